#ifndef SCALPEL_CFILESYSTEM_H
#define SCALPEL_CFILESYSTEM_H

/// rename(2) that fails with EEXIST instead of replacing an existing `to` (Linux renameat2
/// RENAME_NOREPLACE). Returns 0, or -1 with errno set (EINVAL where the file system lacks it).
int scalpel_rename_noreplace(const char *from, const char *to);

/// Swaps `a` and `b` atomically, both of which must exist (renameat2 RENAME_EXCHANGE), so that an
/// old output can be put back if a later output of the same command fails. 0, or -1 with errno.
int scalpel_rename_exchange(const char *a, const char *b);

#endif

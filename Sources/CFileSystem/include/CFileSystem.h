#ifndef SCALPEL_CFILESYSTEM_H
#define SCALPEL_CFILESYSTEM_H

// glibc's mallopt and its M_* settings, which Swift's Glibc module does not expose
// (`MemoryBudget.reuseLargeBlocks`).
#include <malloc.h>

/// rename(2) that fails with EEXIST instead of replacing an existing `to` (Linux renameat2
/// RENAME_NOREPLACE). Returns 0, or -1 with errno set (EINVAL where the file system lacks it).
int scalpel_rename_noreplace(const char *from, const char *to);

/// Swaps `a` and `b` atomically, both of which must exist (renameat2 RENAME_EXCHANGE), so that an
/// old output can be put back if a later output of the same command fails. 0, or -1 with errno.
int scalpel_rename_exchange(const char *a, const char *b);

/// Removes a file, or a folder and everything in it, with system calls only (no allocation, no
/// locks), so that it is safe while another thread is stopped anywhere. 0, or -1 with errno.
int scalpel_remove_tree(const char *path);

/// Stops `thread` for good: it is sent `signal`, whose handler parks it in pause(). Returns once
/// the thread is parked (0), or after about a second (-1). Used on a signal, before the writing
/// thread's temporary files are removed, so that it cannot create them again.
int scalpel_park_thread(unsigned long thread, int signal);

#endif

// Swift's Glibc module does not expose renameat2, so the two flags Scalpel needs are called here.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CFileSystem.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int rename_with(const char *from, const char *to, unsigned int flags) {
#ifdef SYS_renameat2
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
#else
    errno = EINVAL;
    return -1;
#endif
}

int scalpel_rename_noreplace(const char *from, const char *to) { return rename_with(from, to, RENAME_NOREPLACE); }

int scalpel_rename_exchange(const char *a, const char *b) { return rename_with(a, b, RENAME_EXCHANGE); }

// Clean-up on a signal: removing temporary outputs and stopping the thread that writes them, with
// system calls only, since the stopped thread may hold any lock (malloc's included).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "CFileSystem.h"

struct dirent64_record {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int remove_at(int folder, const char *name, int depth) {
    if (unlinkat(folder, name, 0) == 0 || errno == ENOENT) return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > 8) return -1;
    // A folder: empty it, reading its entries again until none are left, then remove it.
    for (int round = 0; round < 16; round++) {
        int fd = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return errno == ENOENT ? 0 : -1;
        char buffer[4096];
        int removed = 0;
        long count;
        while ((count = syscall(SYS_getdents64, fd, buffer, sizeof buffer)) > 0) {
            for (long offset = 0; offset < count;) {
                struct dirent64_record *entry = (struct dirent64_record *)(buffer + offset);
                offset += entry->d_reclen;
                if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
                if (remove_at(fd, entry->d_name, depth + 1) == 0) removed++;
            }
        }
        close(fd);
        if (unlinkat(folder, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
        if (removed == 0 && errno != ENOTEMPTY) return -1;
    }
    return -1;
}

int scalpel_remove_tree(const char *path) { return remove_at(AT_FDCWD, path, 0); }

static volatile sig_atomic_t parked = 0;

static void park(int signal) {
    (void)signal;
    parked = 1;
    for (;;) pause();
}

int scalpel_park_thread(unsigned long thread, int signal) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = park;
    sigemptyset(&action.sa_mask);
    if (sigaction(signal, &action, NULL) != 0) return -1;
    if (pthread_kill((pthread_t)thread, signal) != 0) return -1;
    struct timespec pause_time = {0, 1000000};  // 1 ms
    for (int i = 0; i < 1000 && !parked; i++) nanosleep(&pause_time, NULL);
    return parked ? 0 : -1;
}

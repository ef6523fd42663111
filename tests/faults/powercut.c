/*
 * powercut.so: an LD_PRELOAD shim that remembers what a process made durable, so a test can
 * emulate a power loss honestly after `kill -9` (tests/src/powercut.rs applies it).
 *
 * After every successful fsync/fdatasync of a regular file under $POWERCUT_ROOT it appends one
 * line to $POWERCUT_STATE/log:
 *   L <size> <path>   for *.mp4 (openva's segment and File video files are only appended to,
 *                     or cut back and synced, so what is durable is a prefix of the file);
 *   S <copy> <path>   for every other file (SQLite's database and WAL are rewritten in
 *                     place): a copy of the whole file as it was synced, in $POWERCUT_STATE.
 * The model is ext4 in its default ordered mode: names (create, rename, unlink) survive, data
 * not synced does not. openva's own writes and SQLite's bundled copy both call the libc
 * symbols, which this file interposes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static unsigned long counter;

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Copies the file behind fd (from offset 0, without moving its cursor) to `to`. */
static int copy_fd(int fd, const char *to) {
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return -1;
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0) { close(out); return -1; }
        if (n == 0) break;
        if (write(out, buf, (size_t)n) != n) { close(out); return -1; }
        off += n;
    }
    return close(out);
}

static void record(int fd) {
    const char *root = getenv("POWERCUT_ROOT");
    const char *state = getenv("POWERCUT_STATE");
    if (!root || !state) return;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    size_t rl = strlen(root);
    if (strncmp(path, root, rl) != 0 || path[rl] != '/') return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char line[2 * PATH_MAX + 64];
    int len;
    if (ends_with(path, ".mp4")) {
        len = snprintf(line, sizeof line, "L\t%lld\t%s\n", (long long)st.st_size, path);
    } else {
        char copy[PATH_MAX];
        unsigned long k = __sync_fetch_and_add(&counter, 1);
        snprintf(copy, sizeof copy, "%s/snap-%d-%lu", state, (int)getpid(), k);
        if (copy_fd(fd, copy) != 0) return;
        len = snprintf(line, sizeof line, "S\t%s\t%s\n", copy, path);
    }
    if (len <= 0 || (size_t)len >= sizeof line) return;
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/log", state);
    int lf = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lf < 0) return;
    /* One write of one line with O_APPEND: lines of concurrent threads do not interleave. */
    if (write(lf, line, (size_t)len) != len) { /* nothing to do: the test will see it */ }
    close(lf);
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int r = real_fsync(fd);
    if (r == 0) record(fd);
    return r;
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int r = real_fdatasync(fd);
    if (r == 0) record(fd);
    return r;
}

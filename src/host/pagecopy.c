/* Batched page copies (pagecopy.h). */
#include "pagecopy.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Cleared, for the life of the process, the first time the kernel refuses
 * the call (any error but a fault or a lack of memory: ENOSYS where it is
 * not built in, whatever errno a seccomp filter returns), so a refused
 * call is paid once. */
static atomic_bool kernel_path = !SL_PAGECOPY_SANITIZED;

bool sl_pagecopy_kernel_path(void)
{
    return atomic_load_explicit(&kernel_path, memory_order_relaxed);
}

void sl_pagecopy_init(sl_pagecopy *c)
{
    c->n = 0;
    c->bytes = 0;
}

/* Whether a copy from src to dst continues the last one queued on both
 * sides. */
static bool continues(const sl_pagecopy *c, const void *dst, const void *src)
{
    if (!c->n)
        return false;
    const struct iovec *d = &c->dst[c->n - 1], *s = &c->src[c->n - 1];
    return (const char *)d->iov_base + d->iov_len == (const char *)dst &&
           (const char *)s->iov_base + s->iov_len == (const char *)src;
}

void sl_pagecopy_add(sl_pagecopy *c, void *dst, const void *src, size_t len)
{
    if (len > SL_PAGECOPY_MAX_BYTES) { /* in pieces a call takes whole */
        for (size_t off = 0, piece; off < len; off += piece) {
            piece = len - off < SL_PAGECOPY_MAX_BYTES ? len - off : SL_PAGECOPY_MAX_BYTES;
            sl_pagecopy_add(c, (char *)dst + off, (const char *)src + off, piece);
        }
        return;
    }
    if (!len)
        return;
    if (SL_PAGECOPY_MAX_BYTES - c->bytes < len)
        sl_pagecopy_flush(c);
    if (continues(c, dst, src)) {
        c->dst[c->n - 1].iov_len += len;
        c->src[c->n - 1].iov_len += len;
    } else {
        if (c->n == SL_PAGECOPY_BATCH)
            sl_pagecopy_flush(c);
        c->dst[c->n] = (struct iovec){dst, len};
        c->src[c->n] = (struct iovec){(void *)src, len};
        c->n++;
    }
    c->bytes += len;
}

void sl_pagecopy_flush(sl_pagecopy *c)
{
    size_t done = 0;
    if (c->n && sl_pagecopy_kernel_path()) {
        ssize_t r = process_vm_writev(getpid(), c->src, c->n, c->dst, c->n, 0);
        if (r > 0)
            done = (size_t)r;
        else if (r == 0 || (errno != EFAULT && errno != ENOMEM))
            atomic_store_explicit(&kernel_path, false, memory_order_relaxed);
    }
    /* What the kernel did not copy (a fault in a source page, memory
     * pressure, a refused call) is copied here, in order, from the byte it
     * stopped at: a faulting source raises its signal as it always did. */
    for (size_t i = 0; i < c->n; i++) {
        size_t len = c->dst[i].iov_len;
        if (done >= len) {
            done -= len;
            continue;
        }
        memcpy((char *)c->dst[i].iov_base + done, (const char *)c->src[i].iov_base + done, len - done);
        done = 0;
    }
    c->n = 0;
    c->bytes = 0;
}

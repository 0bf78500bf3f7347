/* Batched page copies (pagecopy.h). */
#include "pagecopy.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Cleared, for the life of the process, the first time the kernel refuses
 * the call outright (ENOSYS: not built in; EPERM or EACCES: a seccomp
 * filter or LSM), so a refused call is paid once. */
static atomic_bool kernel_path = true;

bool sl_pagecopy_kernel_path(void)
{
    return atomic_load_explicit(&kernel_path, memory_order_relaxed);
}

void sl_pagecopy_init(sl_pagecopy *c)
{
    c->n = 0;
}

void sl_pagecopy_add(sl_pagecopy *c, void *dst, const void *src, size_t len)
{
    if (c->n) {
        struct iovec *d = &c->dst[c->n - 1], *s = &c->src[c->n - 1];
        if ((char *)d->iov_base + d->iov_len == (char *)dst && (const char *)s->iov_base + s->iov_len == src) {
            d->iov_len += len;
            s->iov_len += len;
            return;
        }
    }
    if (c->n == SL_PAGECOPY_BATCH)
        sl_pagecopy_flush(c);
    c->dst[c->n] = (struct iovec){dst, len};
    c->src[c->n] = (struct iovec){(void *)src, len};
    c->n++;
}

void sl_pagecopy_flush(sl_pagecopy *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += c->dst[i].iov_len;
    if (c->n && sl_pagecopy_kernel_path()) {
        ssize_t r = process_vm_writev(getpid(), c->src, c->n, c->dst, c->n, 0);
        if (r == (ssize_t)total) {
            c->n = 0;
            return;
        }
        if (r < 0 && (errno == ENOSYS || errno == EPERM || errno == EACCES))
            atomic_store_explicit(&kernel_path, false, memory_order_relaxed);
    }
    /* A short or failed transfer (memory pressure, a refused call) is
     * redone whole: copying the same bytes again is harmless. */
    for (size_t i = 0; i < c->n; i++)
        memcpy(c->dst[i].iov_base, c->src[i].iov_base, c->dst[i].iov_len);
    c->n = 0;
}

/* Copying pages into memory that is not yet populated (a fresh anonymous
 * mapping, or a private mapping whose pages are still shared with their
 * file) without one page fault per page. On nested virtualisation a
 * user-mode page fault costs 10-15 us (measured on the build machines,
 * docs/benchmarks.md), twenty times the kernel's own cost of allocating
 * and filling the page; process_vm_writev() on our own process makes the
 * kernel break copy-on-write and fill the pages itself, up to
 * SL_PAGECOPY_BATCH ranges a system call. Where that call is refused (a
 * seccomp filter that returns an error, an old kernel), the copies are
 * plain memcpy() and the result is the same.
 *
 * Copies are deferred: the destination holds the bytes only after
 * sl_pagecopy_flush(). The destination must be mapped writable; sources
 * must stay valid until the flush. Not thread-safe per sl_pagecopy;
 * separate ones may be used from separate threads. */
#ifndef SL_PAGECOPY_H
#define SL_PAGECOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#define SL_PAGECOPY_BATCH 256 /* ranges a system call; IOV_MAX is 1024 */

typedef struct sl_pagecopy {
    struct iovec src[SL_PAGECOPY_BATCH], dst[SL_PAGECOPY_BATCH];
    size_t n;
} sl_pagecopy;

void sl_pagecopy_init(sl_pagecopy *c);

/* Queues a copy of len bytes from src to dst (ranges that do not overlap);
 * one that continues the previous one on both sides extends it. Flushes a
 * full batch. */
void sl_pagecopy_add(sl_pagecopy *c, void *dst, const void *src, size_t len);

/* Performs every queued copy. */
void sl_pagecopy_flush(sl_pagecopy *c);

/* False once the kernel refused process_vm_writev (every copy since is a
 * memcpy); for tests and benchmarks. */
bool sl_pagecopy_kernel_path(void);

#endif

/* Copying pages into memory that is not yet populated (a fresh anonymous
 * mapping, or a private mapping whose pages are still shared with their
 * file) without one page fault per page. On the build machines (PVM
 * guests) a user-mode page fault costs 10-15 us (docs/benchmarks.md),
 * twenty times the kernel's own cost of allocating
 * and filling the page; process_vm_writev() on our own process makes the
 * kernel break copy-on-write and fill the pages itself, up to
 * SL_PAGECOPY_BATCH ranges and SL_PAGECOPY_MAX_BYTES a system call (the
 * kernel copies at most 2 GiB - 4 KiB a call). Where that call is refused
 * (a seccomp filter that returns an error, a kernel built without it), the
 * copies are plain memcpy() and the result is the same; so are they in
 * ASan and TSan builds, whose checks see no write the kernel makes.
 *
 * Copies are deferred: a destination is written when its batch is
 * flushed, by sl_pagecopy_add when the batch is full or by
 * sl_pagecopy_flush(), in the order they were queued. The destination
 * must be mapped writable; sources must stay valid and unchanged until
 * sl_pagecopy_flush() returns. Not thread-safe per sl_pagecopy; separate
 * ones may be used from separate threads. */
#ifndef SL_PAGECOPY_H
#define SL_PAGECOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* The sanitizers see no write the kernel makes: an overflowing
 * destination would go unreported under ASan, a race under TSan. Their
 * builds copy with memcpy, which they check. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SL_PAGECOPY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SL_PAGECOPY_SANITIZED 1
#endif
#endif
#ifndef SL_PAGECOPY_SANITIZED
#define SL_PAGECOPY_SANITIZED 0
#endif

#define SL_PAGECOPY_BATCH 256 /* ranges a system call; IOV_MAX is 1024 */
#define SL_PAGECOPY_MAX_BYTES ((size_t)1 << 30)

typedef struct sl_pagecopy {
    struct iovec src[SL_PAGECOPY_BATCH], dst[SL_PAGECOPY_BATCH];
    size_t n;     /* ranges queued */
    size_t bytes; /* their bytes, at most SL_PAGECOPY_MAX_BYTES */
} sl_pagecopy;

void sl_pagecopy_init(sl_pagecopy *c);

/* Queues a copy of len bytes from src to dst (ranges that do not overlap);
 * one that continues the previous one on both sides extends it. Flushes a
 * full batch. */
void sl_pagecopy_add(sl_pagecopy *c, void *dst, const void *src, size_t len);

/* Performs every queued copy. */
void sl_pagecopy_flush(sl_pagecopy *c);

/* False once the kernel refused process_vm_writev, and in sanitizer
 * builds (every copy is then a memcpy); for tests and benchmarks. */
bool sl_pagecopy_kernel_path(void);

#endif

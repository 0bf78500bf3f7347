/* Heap allocator over the PEB heap region: boundary tags, an explicit free
 * list searched first-fit, immediate coalescing, and an untouched
 * "wilderness" at the end that is only written when handed out, so a fresh
 * heap dirties (copies) only the pages actually used. Payloads are 16-byte
 * aligned. */
#include "rt.h"

#define HDR 16u
#define MIN_BLOCK 48u
#define F_USED ((uintptr_t)1)
#define F_PREV_USED ((uintptr_t)2)
#define SIZE_MASK (~(uintptr_t)15)

typedef struct free_blk {
    uintptr_t hdr;
    uintptr_t pad;
    struct free_blk *next, *prev;
} free_blk;

static uintptr_t heap_lo, heap_hi, top;
static bool top_prev_used = true;
static free_blk *free_head;

void rt_heap_init(uint64_t lo, uint64_t hi)
{
    uintptr_t a = (uintptr_t)((lo + 15) & ~15ull), b = (uintptr_t)(hi & ~15ull);
    heap_lo = a;
    heap_hi = b > a ? b : a;
    top = heap_lo;
    top_prev_used = true;
    free_head = NULL;
}

static uintptr_t *hdr_of(uintptr_t b) { return (uintptr_t *)b; }
static uintptr_t size_of(uintptr_t b) { return *hdr_of(b) & SIZE_MASK; }
static void set_footer(uintptr_t b, uintptr_t size) { *(uintptr_t *)(b + size - sizeof(uintptr_t)) = size; }

static void unlink_blk(free_blk *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        free_head = f->next;
    if (f->next)
        f->next->prev = f->prev;
}

static void push_blk(uintptr_t b, uintptr_t size)
{
    free_blk *f = (free_blk *)b;
    f->hdr = size | F_PREV_USED; /* free blocks are coalesced, so the previous one is in use */
    set_footer(b, size);
    f->prev = NULL;
    f->next = free_head;
    if (free_head)
        free_head->prev = f;
    free_head = f;
}

/* Sets or clears PREV_USED of the block starting at `b` (or of the wilderness). */
static void set_prev_used(uintptr_t b, bool used)
{
    if (b == top) {
        top_prev_used = used;
        return;
    }
    if (used)
        *hdr_of(b) |= F_PREV_USED;
    else
        *hdr_of(b) &= ~F_PREV_USED;
}

void *malloc(size_t n)
{
    if (n > heap_hi - heap_lo)
        return NULL;
    uintptr_t need = ((uintptr_t)n + HDR + 15) & SIZE_MASK;
    if (need < MIN_BLOCK)
        need = MIN_BLOCK;
    for (free_blk *f = free_head; f; f = f->next) {
        uintptr_t b = (uintptr_t)f, size = size_of(b);
        if (size < need)
            continue;
        unlink_blk(f);
        uintptr_t prev_bit = *hdr_of(b) & F_PREV_USED;
        if (size - need >= MIN_BLOCK) {
            push_blk(b + need, size - need);
            *hdr_of(b) = need | F_USED | prev_bit;
        } else {
            *hdr_of(b) = size | F_USED | prev_bit;
            set_prev_used(b + size, true);
        }
        return (void *)(b + HDR);
    }
    if (heap_hi - top < need)
        return NULL;
    uintptr_t b = top;
    *hdr_of(b) = need | F_USED | (top_prev_used ? F_PREV_USED : 0);
    top += need;
    top_prev_used = true;
    return (void *)(b + HDR);
}

static uintptr_t block_of(void *p)
{
    uintptr_t b = (uintptr_t)p - HDR;
    if ((uintptr_t)p < heap_lo + HDR || (uintptr_t)p >= top || ((uintptr_t)p & 15) || !(*hdr_of(b) & F_USED) ||
        size_of(b) < MIN_BLOCK || size_of(b) > top - b)
        sl_abort(SL_ABI_EABORT, "free/realloc: invalid pointer or corrupted heap");
    return b;
}

void free(void *p)
{
    if (!p)
        return;
    uintptr_t b = block_of(p), size = size_of(b);
    if (!(*hdr_of(b) & F_PREV_USED)) {
        uintptr_t psize = *(uintptr_t *)(b - sizeof(uintptr_t));
        b -= psize;
        unlink_blk((free_blk *)b);
        size += psize;
    }
    uintptr_t next = b + size;
    if (next == top) { /* give it back to the wilderness */
        top = b;
        top_prev_used = true;
        return;
    }
    if (!(*hdr_of(next) & F_USED)) {
        uintptr_t nsize = size_of(next);
        unlink_blk((free_blk *)next);
        size += nsize;
    }
    push_blk(b, size);
    set_prev_used(b + size, false);
}

void *calloc(size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size)
        return NULL;
    void *p = malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    uintptr_t b = block_of(p), have = size_of(b) - HDR;
    if (n <= have)
        return p;
    void *q = malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, have);
    free(p);
    return q;
}

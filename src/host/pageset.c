/* The set of dirty pages as a flat bitmap (see pageset.h for why). */
#include "pageset.h"

#include <stdlib.h>

bool sl_pageset_init(sl_pageset *s, uint64_t n_pages)
{
    s->n_pages = n_pages;
    s->n_words = (n_pages + 63) / 64;
    s->words = calloc(s->n_words ? s->n_words : 1, sizeof *s->words);
    return s->words != NULL;
}

void sl_pageset_free(sl_pageset *s)
{
    free(s->words);
    s->words = NULL;
    s->n_words = s->n_pages = 0;
}

/* The bits of page numbers [lo, hi) within one word (0 <= lo < hi <= 64). */
static uint64_t bits(unsigned lo, unsigned hi)
{
    uint64_t upto = hi == 64 ? ~0ull : (1ull << hi) - 1;
    return upto & ~((1ull << lo) - 1);
}

void sl_pageset_add_range(sl_pageset *s, uint64_t first, uint64_t count)
{
    if (first >= s->n_pages)
        return;
    uint64_t end = count < s->n_pages - first ? first + count : s->n_pages;
    while (first < end) {
        unsigned lo = (unsigned)(first % 64);
        unsigned hi = end - (first - lo) < 64 ? (unsigned)(end - (first - lo)) : 64;
        s->words[first / 64] |= bits(lo, hi);
        first += hi - lo;
    }
}

void sl_pageset_merge(sl_pageset *s, const uint64_t *bitmap)
{
    for (uint64_t i = 0; i < s->n_words; i++)
        s->words[i] |= bitmap[i];
    if (s->n_pages % 64)
        s->words[s->n_words - 1] &= bits(0, (unsigned)(s->n_pages % 64));
}

bool sl_pageset_has(const sl_pageset *s, uint64_t page)
{
    return page < s->n_pages && (s->words[page / 64] >> (page % 64) & 1);
}

void sl_pageset_remove(sl_pageset *s, uint64_t page)
{
    if (page < s->n_pages)
        s->words[page / 64] &= ~(1ull << (page % 64));
}

uint64_t sl_pageset_count(const sl_pageset *s)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < s->n_words; i++)
        n += (uint64_t)__builtin_popcountll(s->words[i]);
    return n;
}

bool sl_pageset_take_run(sl_pageset *s, uint64_t *page, uint64_t *count)
{
    if (*page >= s->n_pages)
        return false;
    uint64_t w = *page / 64, word = s->words[w] & ~((1ull << (*page % 64)) - 1);
    while (!word) {
        if (++w == s->n_words)
            return false;
        word = s->words[w];
    }
    uint64_t first = w * 64 + (uint64_t)__builtin_ctzll(word), p = first;
    /* Clear whole words while the run covers them, then the partial tail. */
    for (;;) {
        unsigned lo = (unsigned)(p % 64);
        uint64_t rest = s->words[p / 64] >> lo; /* members from p up, in this word */
        unsigned ones = rest == ~0ull >> lo ? 64 - lo : (unsigned)__builtin_ctzll(~rest);
        s->words[p / 64] &= ~bits(lo, lo + ones);
        p += ones;
        if (lo + ones < 64 || p >= s->n_pages)
            break;
    }
    *page = first;
    *count = p - first;
    return true;
}

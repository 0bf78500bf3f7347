/* The dirty-page set (src/host/pageset.c) against a plain reference: one
 * bool per page. Random operations in the mix the workload has (ranges,
 * hypervisor bitmaps, single removals, runs taken until empty), over sizes
 * on and off word boundaries, and every answer compared with the reference
 * after each step. */
#include <stdbool.h>
#include <stdint.h>

#include "pageset.h"
#include "t.h"
#include "../common/rng.h"

#define MAX_PAGES 700

typedef struct ref {
    bool in[MAX_PAGES];
    uint64_t n;
} ref;

uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static bool same(const sl_pageset *s, const ref *r)
{
    uint64_t count = 0;
    for (uint64_t p = 0; p < r->n; p++) {
        if (sl_pageset_has(s, p) != r->in[p])
            return false;
        count += r->in[p];
    }
    return sl_pageset_count(s) == count && !sl_pageset_has(s, r->n) && !sl_pageset_has(s, r->n + 64);
}

static void ref_add_range(ref *r, uint64_t first, uint64_t count)
{
    for (uint64_t p = first; p < r->n && p - first < count; p++)
        r->in[p] = true;
}

/* Takes every run and checks each against the reference's next run. */
static bool drain_matches(sl_pageset *s, ref *r)
{
    uint64_t at = 0;
    for (uint64_t p = 0, run; sl_pageset_take_run(s, &p, &run); p += run) {
        while (at < r->n && !r->in[at])
            at++;
        if (at != p || run == 0)
            return false;
        for (uint64_t i = 0; i < run; i++, at++) {
            if (at >= r->n || !r->in[at])
                return false;
            r->in[at] = false;
        }
        if (at < r->n && r->in[at])
            return false; /* the run stopped short */
    }
    while (at < r->n && !r->in[at])
        at++;
    return at == r->n && sl_pageset_count(s) == 0;
}

static void check_random(uint64_t n)
{
    sl_pageset s;
    ref r = {.n = n};
    REQUIRE(sl_pageset_init(&s, n));
    uint64_t words = (n + 63) / 64;
    uint64_t *log = calloc(words + 1, sizeof *log);
    REQUIRE(log);
    for (int step = 0; step < 400; step++) {
        switch (rnd(5)) {
        case 0: {
            uint64_t first = rnd(n + 70), count = rnd(3) ? rnd(5) : rnd(200);
            sl_pageset_add_range(&s, first, count);
            ref_add_range(&r, first, count);
            break;
        }
        case 1: /* a hypervisor log, stray bits past the end included */
            for (uint64_t w = 0; w < words; w++)
                log[w] = rnd(4) ? 0 : rng_state & rng_state >> 3;
            sl_pageset_merge(&s, log);
            for (uint64_t p = 0; p < n; p++)
                r.in[p] |= log[p / 64] >> (p % 64) & 1;
            break;
        case 2: {
            uint64_t p = rnd(n + 10);
            sl_pageset_remove(&s, p);
            if (p < n)
                r.in[p] = false;
            break;
        }
        case 3:
            CHECK(drain_matches(&s, &r));
            break;
        default: { /* one run from the middle, as a resumed scan sees it */
            uint64_t p = rnd(n), run, at = p;
            bool got = sl_pageset_take_run(&s, &p, &run);
            while (at < n && !r.in[at])
                at++;
            CHECK_EQ(got, at < n);
            if (got) {
                CHECK_EQ(p, at);
                for (uint64_t i = 0; i < run; i++) {
                    CHECK(r.in[p + i]);
                    r.in[p + i] = false;
                }
                CHECK(p + run == n || !r.in[p + run]);
            }
        }
        }
        if (!same(&s, &r)) {
            CHECK(!"set and reference differ");
            break;
        }
    }
    free(log);
    sl_pageset_free(&s);
}

static void test_random_against_reference(void)
{
    static const uint64_t sizes[] = {1, 63, 64, 65, 128, 129, 200, 640, MAX_PAGES};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_random(sizes[i]);
}

/* A run that crosses several whole words is taken as one. */
static void test_run_across_words(void)
{
    sl_pageset s;
    REQUIRE(sl_pageset_init(&s, 512));
    sl_pageset_add_range(&s, 60, 200);
    sl_pageset_add_range(&s, 300, 1);
    CHECK_EQ(sl_pageset_count(&s), 201);
    uint64_t p = 0, run = 0;
    CHECK(sl_pageset_take_run(&s, &p, &run));
    CHECK_EQ(p, 60);
    CHECK_EQ(run, 200);
    p += run;
    CHECK(sl_pageset_take_run(&s, &p, &run));
    CHECK_EQ(p, 300);
    CHECK_EQ(run, 1);
    p += run;
    CHECK(!sl_pageset_take_run(&s, &p, &run));
    CHECK_EQ(sl_pageset_count(&s), 0);
    sl_pageset_free(&s);
}

/* Ranges are clipped to the set, whatever their length. */
static void test_range_clipped(void)
{
    sl_pageset s;
    REQUIRE(sl_pageset_init(&s, 100));
    sl_pageset_add_range(&s, 90, UINT64_MAX);
    sl_pageset_add_range(&s, 100, 5);
    sl_pageset_add_range(&s, UINT64_MAX, 2);
    CHECK_EQ(sl_pageset_count(&s), 10);
    CHECK(sl_pageset_has(&s, 99));
    CHECK(!sl_pageset_has(&s, 100));
    sl_pageset_free(&s);
}

int main(void)
{
    RUN(test_random_against_reference);
    RUN(test_run_across_words);
    RUN(test_range_clipped);
    T_EXIT();
}

/* Minimal test harness: every check prints on failure; each TEST prints one
 * "PASS name" or "FAIL name" line, which tests/run counts. A test binary exits
 * non-zero when any test failed. */
#ifndef SL_T_H
#define SL_T_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int t_failed_total;
static int t_failed_now;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("  check failed %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            t_failed_now = 1;                                                        \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                               \
    do {                                                                             \
        unsigned long long t_a_ = (unsigned long long)(a), t_b_ = (unsigned long long)(b); \
        if (t_a_ != t_b_) {                                                          \
            printf("  check failed %s:%d: %s == %s (0x%llx != 0x%llx)\n", __FILE__,  \
                   __LINE__, #a, #b, t_a_, t_b_);                                    \
            t_failed_now = 1;                                                        \
        }                                                                            \
    } while (0)

/* Stop the current test when a precondition fails (the test must `return`). */
#define REQUIRE(cond)                                                                \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("  required %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
            t_failed_now = 1;                                                        \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define RUN(fn)                                                                      \
    do {                                                                             \
        t_failed_now = 0;                                                            \
        fn();                                                                        \
        printf("%s %s\n", t_failed_now ? "FAIL" : "PASS", #fn);                      \
        fflush(stdout);                                                              \
        t_failed_total += t_failed_now;                                              \
    } while (0)

#define T_EXIT() return t_failed_total ? 1 : 0

#endif

/* Minimal test harness: every check prints on failure; each TEST prints one
 * "PASS name" or "FAIL name" line, which tests/run counts. A test binary exits
 * non-zero when any test failed. */
#ifndef SL_T_H
#define SL_T_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandlet.h"

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

/* A fresh directory for a test's files, $TMPDIR/<name>.XXXXXX (/tmp without
 * TMPDIR), into dir; false (with the reason printed) when it cannot be made. */
static inline int t_tmpdir(char *dir, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (mkdtemp(dir))
        return 1;
    perror("mkdtemp");
    return 0;
}

/* ---- which tests run where (RUN_ARCH), the rule tests/e2e/arch.sh repeats
 * for the shell suites.
 *
 * A test declares what it needs: T_AMD64 and/or T_I686 for the guests it runs
 * (both for a test that mixes them), T_KVM when it needs hardware-KVM
 * semantics (PVM runs x86-64 guests but not, e.g., SSE at CPL0), T_NONE when
 * it runs no guest at all. It runs iff
 *   - every architecture it needs is available here: sl_backend_probe(arch)
 *     is not "lab" (with T_KVM: is "kvm"), and
 *   - at least one of its architectures is covered by this run:
 *     $SANDLET_TEST_ARCHS, a list such as "amd64", "i686" or "amd64,i686"
 *     (unset or empty: all).
 * A T_NONE test always runs. A test that is not selected prints nothing at
 * all: the run that covers it (tests/run: natively, or in the KVM lab) counts
 * it. When SANDLET_TEST_ARCHS is set and names an architecture whose guests
 * cannot run here, or a name it does not know, the binary prints one FAIL line
 * (nothing covered could run) and exits non-zero. */
#define T_NONE 0u
#define T_AMD64 1u
#define T_I686 2u
#define T_KVM 4u

static inline const char *t_backend(unsigned need_arch)
{
    static const char *cache[2];
    int i = need_arch == T_I686;
    if (!cache[i])
        cache[i] = sl_backend_probe(i ? SL_ARCH_I686 : SL_ARCH_AMD64, NULL, 0);
    return cache[i];
}

/* The architectures SANDLET_TEST_ARCHS covers (T_AMD64 | T_I686), checked
 * once: a bad list or a covered architecture that cannot run here is one FAIL. */
static inline unsigned t_covered(void)
{
    static int done;
    static unsigned cov;
    if (done)
        return cov;
    done = 1;
    const char *env = getenv("SANDLET_TEST_ARCHS");
    if (!env || !*env)
        return cov = T_AMD64 | T_I686;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *save = NULL, *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        if (!strcmp(w, "amd64") || !strcmp(w, "x86_64") || !strcmp(w, "x86-64"))
            cov |= T_AMD64;
        else if (!strcmp(w, "i686") || !strcmp(w, "i386"))
            cov |= T_I686;
        else {
            printf("FAIL SANDLET_TEST_ARCHS=%s: unknown architecture '%s' (amd64, i686)\n", env, w);
            t_failed_total++;
        }
    }
    for (unsigned a = T_AMD64; a <= T_I686; a <<= 1)
        if ((cov & a) && strcmp(t_backend(a), "lab") == 0) {
            char why[256] = "";
            sl_backend_probe(a == T_I686 ? SL_ARCH_I686 : SL_ARCH_AMD64, why, sizeof why);
            printf("FAIL SANDLET_TEST_ARCHS=%s: %s guests cannot run here (%s)\n", env,
                   a == T_I686 ? "i686" : "amd64", why);
            t_failed_total++;
        }
    fflush(stdout);
    return cov;
}

/* Whether a test that needs `need` (T_* bits) runs here (see above). */
static inline int t_selected(unsigned need)
{
    unsigned archs = need & (T_AMD64 | T_I686);
    if (!archs)
        return 1;
    unsigned cov = t_covered();
    for (unsigned a = T_AMD64; a <= T_I686; a <<= 1) {
        if (!(archs & a))
            continue;
        const char *b = t_backend(a);
        if (strcmp(b, "lab") == 0 || ((need & T_KVM) && strcmp(b, "kvm") != 0))
            return 0;
    }
    return (archs & cov) != 0;
}

/* RUN(fn) when the test is selected (t_selected); nothing at all otherwise. */
#define RUN_ARCH(need, fn)                                                           \
    do {                                                                             \
        if (t_selected(need))                                                        \
            RUN(fn);                                                                 \
    } while (0)

#define T_EXIT() return t_failed_total ? 1 : 0

#endif

/* End-to-end tests of guest failures (guests/faulty.c, x86-64): every fault is
 * a clear error naming what happened, never a host crash; the sandbox is then
 * POISONED (calls and snapshots refused) until a restore, after which Counter
 * answers from the snapshot's state again. Spin is stopped by the per-call
 * timeout and by sl_sandbox_kill from another thread. Needs a real KVM (or
 * the KVM lab). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t counter(sl_sandbox *sb)
{
    sl_value r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, "Counter", NULL, 0, &r);
    if (rc || r.type != SL_TYPE_I64) {
        printf("  Counter: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
        return INT64_MIN;
    }
    return r.v.i64;
}

/* The faulty guest, initialised, with Counter at 1 and a snapshot of that. */
typedef struct env {
    sl_sandbox *sb;
    sl_snapshot *snap;
    int prints;
} env;

static void count_print(void *user, int level, const char *msg, size_t len)
{
    (void)level;
    (void)msg;
    (void)len;
    ((env *)user)->prints++;
}

static int env_open(env *x)
{
    memset(x, 0, sizeof *x);
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&x->sb, guest_path("faulty"), NULL, err, sizeof err);
    if (rc) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path("faulty"), sl_strerror(rc), err);
        return rc;
    }
    sl_sandbox_set_print(x->sb, count_print, x);
    if ((rc = sl_sandbox_init(x->sb))) {
        printf("  init: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x->sb));
        return rc;
    }
    if (counter(x->sb) != 1)
        return -1;
    if ((rc = sl_sandbox_snapshot(x->sb, &x->snap))) {
        printf("  snapshot: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x->sb));
        return rc;
    }
    return 0;
}

static void env_close(env *x)
{
    sl_snapshot_free(x->snap);
    sl_sandbox_free(x->sb);
}

/* After a failed call: POISONED, calls and snapshots refused with SL_ESTATE,
 * then a restore makes it answer from the snapshot (Counter 1 -> 2). */
static void check_poisoned_then_restore(env *x)
{
    CHECK_EQ(sl_sandbox_status(x->sb), SL_STATUS_POISONED);
    sl_sandbox_info info;
    if (sl_sandbox_info_get(x->sb, &info) == 0)
        CHECK_EQ(info.status, SL_STATUS_POISONED);
    else
        t_failed_now = 1;
    sl_value r;
    CHECK_EQ(sl_sandbox_call(x->sb, "Counter", NULL, 0, &r), SL_ESTATE);
    CHECK(has(sl_sandbox_errmsg(x->sb), "poison") || has(sl_sandbox_errmsg(x->sb), "restore"));
    sl_snapshot *s = NULL;
    CHECK_EQ(sl_sandbox_snapshot(x->sb, &s), SL_ESTATE);
    CHECK(s == NULL);
    sl_snapshot_free(s);
    CHECK_EQ(sl_sandbox_status(x->sb), SL_STATUS_POISONED);
    int rc = sl_sandbox_restore(x->sb, x->snap);
    CHECK_EQ(rc, 0);
    if (rc) {
        printf("  restore: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x->sb));
        return;
    }
    CHECK_EQ(sl_sandbox_status(x->sb), SL_STATUS_READY);
    CHECK_EQ(counter(x->sb), 2);
    CHECK_EQ(counter(x->sb), 3);
    /* and once more from the snapshot */
    REQUIRE(sl_sandbox_restore(x->sb, x->snap) == 0);
    CHECK_EQ(counter(x->sb), 2);
}

/* Calls `fn` (no arguments), expects `want`, prints the message. */
static int fail_call(env *x, const char *fn, const sl_value *args, size_t n, int want)
{
    sl_value r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(x->sb, fn, args, n, &r);
    printf("  %s: %s: %s\n", fn, sl_strerror(rc), sl_sandbox_errmsg(x->sb));
    CHECK_EQ(rc, want);
    CHECK(sl_sandbox_errmsg(x->sb)[0] != 0);
    return rc;
}

static void test_write_read_only(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    fail_call(&x, "WriteReadOnly", NULL, 0, SL_EFAULT);
    const char *m = sl_sandbox_errmsg(x.sb);
    CHECK(has(m, "page fault") || has(m, "#PF"));
    CHECK(has(m, "write"));
    CHECK(has(m, "0x")); /* the address */
    check_poisoned_then_restore(&x);
    env_close(&x);
}

/* User code may not write the kernel's memory: its live page tables (in
 * scratch) or its IDT. Either is a clear page fault (user write to a present
 * supervisor page, error code 0x7), and a restore recovers. */
static void test_write_kernel_memory(void)
{
    static const char *const fns[] = {"WritePageTable", "WriteIDT"};
    for (size_t i = 0; i < 2; i++) {
        env x;
        REQUIRE(env_open(&x) == 0);
        fail_call(&x, fns[i], NULL, 0, SL_EFAULT);
        const char *m = sl_sandbox_errmsg(x.sb);
        CHECK(has(m, "page fault"));
        CHECK(has(m, "error code 0x7"));
        CHECK(has(m, "guest kernel's memory"));
        check_poisoned_then_restore(&x);
        /* Nothing of the kernel changed: a fresh sandbox from the snapshot works. */
        sl_sandbox *fresh;
        char err[256];
        REQUIRE(sl_sandbox_new_from_snapshot(&fresh, x.snap, err, sizeof err) == 0);
        CHECK_EQ(counter(fresh), 2);
        sl_sandbox_free(fresh);
        env_close(&x);
    }
}

static void test_exec_nx(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    fail_call(&x, "ExecNX", NULL, 0, SL_EFAULT);
    const char *m = sl_sandbox_errmsg(x.sb);
    CHECK(has(m, "page fault") || has(m, "#PF"));
    CHECK(has(m, "fetch") || has(m, "exec") || has(m, "instruction") || has(m, "NX"));
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_div_zero(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    fail_call(&x, "DivZero", NULL, 0, SL_EFAULT);
    const char *m = sl_sandbox_errmsg(x.sb);
    CHECK(has(m, "divide") || has(m, "#DE") || has(m, "vector 0"));
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_recurse(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    int rc = fail_call(&x, "Recurse", NULL, 0, SL_EFAULT);
    (void)rc;
    CHECK(has(sl_sandbox_errmsg(x.sb), "stack"));
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_exhaust_scratch(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    fail_call(&x, "ExhaustScratch", NULL, 0, SL_ENOSCRATCH);
    CHECK(has(sl_sandbox_errmsg(x.sb), "scratch"));
    check_poisoned_then_restore(&x);
    /* the restore gave the pages back: it runs out the same way again */
    fail_call(&x, "ExhaustScratch", NULL, 0, SL_ENOSCRATCH);
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_bad_host_call(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    fail_call(&x, "BadHostCall", NULL, 0, SL_EABI);
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_abort(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    sl_value a[2] = {{.type = SL_TYPE_I32}, {.type = SL_TYPE_STRING}};
    a[0].v.i32 = 7;
    a[1].v.buf.ptr = "boom";
    a[1].v.buf.len = 4;
    fail_call(&x, "Abort", a, 2, SL_EABORT);
    CHECK(strstr(sl_sandbox_errmsg(x.sb), "7") != NULL);
    CHECK(strstr(sl_sandbox_errmsg(x.sb), "boom") != NULL);
    check_poisoned_then_restore(&x);
    /* another code and text */
    a[0].v.i32 = -123456;
    a[1].v.buf.ptr = "a longer reason, with words";
    a[1].v.buf.len = strlen(a[1].v.buf.ptr);
    fail_call(&x, "Abort", a, 2, SL_EABORT);
    CHECK(strstr(sl_sandbox_errmsg(x.sb), "-123456") != NULL);
    CHECK(strstr(sl_sandbox_errmsg(x.sb), "a longer reason, with words") != NULL);
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_spin_timeout(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    sl_sandbox_set_timeout(x.sb, 300);
    /* a normal call is not affected */
    CHECK_EQ(counter(x.sb), 2);
    double t0 = now_s();
    fail_call(&x, "Spin", NULL, 0, SL_ETIMEOUT);
    double dt = now_s() - t0;
    printf("  stopped after %.3f s\n", dt);
    CHECK(dt >= 0.25);
    CHECK(dt < 30);
    CHECK(has(sl_sandbox_errmsg(x.sb), "time"));
    sl_sandbox_set_timeout(x.sb, 0);
    check_poisoned_then_restore(&x);
    /* the timeout holds for every call, not only the first */
    sl_sandbox_set_timeout(x.sb, 200);
    fail_call(&x, "Spin", NULL, 0, SL_ETIMEOUT);
    sl_sandbox_set_timeout(x.sb, 0);
    check_poisoned_then_restore(&x);
    env_close(&x);
}

typedef struct killer {
    sl_sandbox *sb;
    unsigned delay_ms;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    struct timespec ts = {.tv_sec = k->delay_ms / 1000, .tv_nsec = (long)(k->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    sl_sandbox_kill(k->sb);
    return NULL;
}

static void test_spin_kill(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    for (int round = 0; round < 2; round++) {
        killer k = {x.sb, 300};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, kill_later, &k) == 0);
        double t0 = now_s();
        fail_call(&x, "Spin", NULL, 0, SL_ECANCELLED);
        double dt = now_s() - t0;
        pthread_join(th, NULL);
        printf("  killed after %.3f s\n", dt);
        CHECK(dt >= 0.25);
        CHECK(dt < 30);
        CHECK(has(sl_sandbox_errmsg(x.sb), "kill") || has(sl_sandbox_errmsg(x.sb), "cancel"));
        check_poisoned_then_restore(&x);
    }
    /* a kill with a timeout set too: the kill wins (it comes first) */
    sl_sandbox_set_timeout(x.sb, 20000);
    killer k = {x.sb, 200};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, kill_later, &k) == 0);
    fail_call(&x, "Spin", NULL, 0, SL_ECANCELLED);
    pthread_join(th, NULL);
    sl_sandbox_set_timeout(x.sb, 0);
    check_poisoned_then_restore(&x);
    env_close(&x);
}

static void test_kill_before_call(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    /* no call runs: the next one is cancelled at once */
    sl_sandbox_kill(x.sb);
    fail_call(&x, "Counter", NULL, 0, SL_ECANCELLED);
    check_poisoned_then_restore(&x); /* the cancel was used up: Counter works */
    env_close(&x);
}

/* Faults in one sandbox leave another one alone. */
static void test_isolation(void)
{
    env a, b;
    REQUIRE(env_open(&a) == 0);
    if (env_open(&b) != 0) {
        env_close(&a);
        REQUIRE(0);
    }
    fail_call(&a, "WriteReadOnly", NULL, 0, SL_EFAULT);
    CHECK_EQ(sl_sandbox_status(b.sb), SL_STATUS_READY);
    CHECK_EQ(counter(b.sb), 2);
    /* b's snapshot is not a's family */
    CHECK_EQ(sl_sandbox_restore(a.sb, b.snap), SL_EFAMILY);
    CHECK_EQ(sl_sandbox_status(a.sb), SL_STATUS_POISONED);
    check_poisoned_then_restore(&a);
    CHECK_EQ(counter(b.sb), 3);
    env_close(&a);
    env_close(&b);
}

/* One sandbox through every fault in a row, restoring in between. */
static void test_all_in_a_row(void)
{
    env x;
    REQUIRE(env_open(&x) == 0);
    static const struct {
        const char *fn;
        int want;
    } seq[] = {
        {"WriteReadOnly", SL_EFAULT}, {"ExecNX", SL_EFAULT},         {"DivZero", SL_EFAULT},
        {"Recurse", SL_EFAULT},       {"BadHostCall", SL_EABI},      {"ExhaustScratch", SL_ENOSCRATCH},
        {"WritePageTable", SL_EFAULT}, {"WriteIDT", SL_EFAULT},         {"WriteReadOnly", SL_EFAULT},
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        sl_value r;
        int rc = sl_sandbox_call(x.sb, seq[i].fn, NULL, 0, &r);
        if (rc != seq[i].want) {
            printf("  %s: %s, want %s\n", seq[i].fn, sl_strerror(rc), sl_strerror(seq[i].want));
            t_failed_now = 1;
        }
        CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_POISONED);
        REQUIRE(sl_sandbox_restore(x.sb, x.snap) == 0);
        CHECK_EQ(counter(x.sb), 2);
    }
    env_close(&x);
}

int main(void)
{
    RUN_ARCH(T_AMD64, test_write_read_only);
    RUN_ARCH(T_AMD64, test_write_kernel_memory);
    RUN_ARCH(T_AMD64, test_exec_nx);
    RUN_ARCH(T_AMD64, test_div_zero);
    RUN_ARCH(T_AMD64, test_recurse);
    RUN_ARCH(T_AMD64, test_exhaust_scratch);
    RUN_ARCH(T_AMD64, test_bad_host_call);
    RUN_ARCH(T_AMD64, test_abort);
    RUN_ARCH(T_AMD64, test_spin_timeout);
    RUN_ARCH(T_AMD64, test_spin_kill);
    RUN_ARCH(T_AMD64, test_kill_before_call);
    RUN_ARCH(T_AMD64, test_isolation);
    RUN_ARCH(T_AMD64, test_all_in_a_row);
    T_EXIT();
}

/* End-to-end tests of the public API with the demo guest, on both
 * architectures: demo (x86-64 static PIE) and demo32 (i686). Every guest
 * function, type and name errors, host functions, prints, snapshots and
 * restores (generations, A/B/A, identity, families, new sandboxes from a
 * snapshot) and in-guest copy-on-write seen through sl_sandbox_info_get.
 *
 * Each test runs where its guests' architectures can (RUN_ARCH in
 * tests/unit/t.h): demo on hardware KVM or PVM, demo32 (i686 paging) on
 * hardware KVM, so in the KVM lab on PVM hosts (tests/run does that). Guests
 * come from $SANDLET_GUESTS (default build/guests); a missing guest fails the
 * tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

/* ------------------------------------------------------------------ helpers */

/* What the host function HostUpper sees and does. */
typedef struct upper_ctx {
    int fail;  /* non-zero: the host function reports an error */
    int calls;
    int bad_args;
    char buf[512];
} upper_ctx;

static int host_upper(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err,
                      size_t errlen)
{
    upper_ctx *u = user;
    u->calls++;
    if (nargs != 1 || args[0].type != SL_TYPE_STRING || args[0].v.buf.len >= sizeof u->buf) {
        u->bad_args++;
        snprintf(err, errlen, "HostUpper: unexpected arguments");
        return -1;
    }
    if (u->fail) {
        snprintf(err, errlen, "HostUpper refuses today");
        return -1;
    }
    upper_string(ret, u->buf, &args[0]);
    return 0;
}

/* What the guest printed. */
typedef struct print_ctx {
    int count;
    int level;
    char text[1024];
} print_ctx;

static void capture_print(void *user, int level, const char *msg, size_t len)
{
    print_ctx *p = user;
    p->count++;
    p->level = level;
    if (len >= sizeof p->text)
        len = sizeof p->text - 1;
    memcpy(p->text, msg, len);
    p->text[len] = 0;
}

typedef struct env {
    sl_sandbox *sb;
    upper_ctx up;
    print_ctx pr;
} env;

/* A sandbox on `guest` with HostUpper registered and prints captured, after
 * init. Prints why and returns non-zero when any step fails. */
static int env_open_cfg(env *x, const char *guest, const sl_config *cfg)
{
    memset(x, 0, sizeof *x);
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&x->sb, guest_path(guest), cfg, err, sizeof err);
    if (rc) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path(guest), sl_strerror(rc), err);
        return rc;
    }
    static const int s1[] = {SL_TYPE_STRING};
    rc = sl_sandbox_register(x->sb, "HostUpper", SL_TYPE_STRING, s1, 1, host_upper, &x->up);
    if (rc) {
        printf("  register HostUpper: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x->sb));
        return rc;
    }
    sl_sandbox_set_print(x->sb, capture_print, &x->pr);
    if (sl_sandbox_status(x->sb) != SL_STATUS_NEW) {
        printf("  status before init is %d, not NEW\n", sl_sandbox_status(x->sb));
        return -1;
    }
    rc = sl_sandbox_init(x->sb);
    if (rc) {
        printf("  init of %s: %s: %s\n", guest, sl_strerror(rc), sl_sandbox_errmsg(x->sb));
        return rc;
    }
    return 0;
}

static int env_open(env *x, const char *guest) { return env_open_cfg(x, guest, NULL); }

static void env_close(env *x)
{
    sl_sandbox_free(x->sb);
    x->sb = NULL;
}

static int call(sl_sandbox *sb, const char *name, const sl_value *args, size_t n, sl_value *ret)
{
    memset(ret, 0, sizeof *ret);
    return sl_sandbox_call(sb, name, args, n, ret);
}

/* Counter(): the new value, or INT64_MIN (and a message) when the call fails. */
static int64_t counter(sl_sandbox *sb)
{
    sl_value r;
    int rc = call(sb, "Counter", NULL, 0, &r);
    if (rc || r.type != SL_TYPE_I64) {
        printf("  Counter: %s (type %d): %s\n", sl_strerror(rc), r.type, sl_sandbox_errmsg(sb));
        return INT64_MIN;
    }
    return r.v.i64;
}

static uint64_t generation_call(sl_sandbox *sb)
{
    sl_value r;
    int rc = call(sb, "Generation", NULL, 0, &r);
    if (rc || r.type != SL_TYPE_U64) {
        printf("  Generation: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
        return UINT64_MAX;
    }
    return r.v.u64;
}

static sl_value str(const char *s)
{
    sl_value v = {.type = SL_TYPE_STRING};
    v.v.buf.ptr = s;
    v.v.buf.len = strlen(s);
    return v;
}

static sl_value i32v(int32_t x)
{
    sl_value v = {.type = SL_TYPE_I32};
    v.v.i32 = x;
    return v;
}

static sl_value u64v(uint64_t x)
{
    sl_value v = {.type = SL_TYPE_U64};
    v.v.u64 = x;
    return v;
}

/* The demo guest's Fill pattern: byte i is (i * 131 + 17) mod 256. */
static uint64_t fill_sum(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++)
        s += (uint8_t)(i * 131u + 17u);
    return s;
}

static int fill(sl_sandbox *sb, uint64_t n, uint64_t *sum)
{
    sl_value a = u64v(n), r;
    int rc = call(sb, "Fill", &a, 1, &r);
    if (rc == 0 && r.type != SL_TYPE_U64)
        rc = -100;
    if (rc)
        printf("  Fill(%llu): %s: %s\n", (unsigned long long)n, rc == -100 ? "wrong type" : sl_strerror(rc),
               sl_sandbox_errmsg(sb));
    else
        *sum = r.v.u64;
    return rc;
}

static int get_info(sl_sandbox *sb, sl_sandbox_info *info)
{
    memset(info, 0, sizeof *info);
    int rc = sl_sandbox_info_get(sb, info);
    if (rc)
        printf("  info: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
    return rc;
}

/* ---------------------------------------------------------------- the tests */

static void functions(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    sl_sandbox_info info;
    if (get_info(x.sb, &info) == 0) {
        unsigned arch = strcmp(guest, "demo32") == 0 ? SL_ARCH_I686 : SL_ARCH_AMD64;
        CHECK_EQ(info.arch, arch);
        /* the backend the probe names for the guest's architecture */
        const char *want = sl_backend_probe(arch, NULL, 0);
        CHECK(info.backend && strcmp(info.backend, want) == 0);
        if (!info.backend || strcmp(info.backend, want) != 0)
            printf("  backend %s, sl_backend_probe says %s\n", info.backend ? info.backend : "(null)", want);
        CHECK_EQ(info.status, SL_STATUS_READY);
        CHECK_EQ(info.heap_size, SL_DEFAULT_HEAP_SIZE);
        CHECK_EQ(info.scratch_size, SL_DEFAULT_SCRATCH_SIZE);
        CHECK_EQ(info.input_size, SL_DEFAULT_IO_SIZE);
        CHECK_EQ(info.output_size, SL_DEFAULT_IO_SIZE);
        CHECK_EQ(info.stack_size, SL_DEFAULT_STACK_SIZE);
    }
    static const struct {
        const char *name;
        int ret, n, p[2];
    } want[] = {
        {"Echo", SL_TYPE_STRING, 1, {SL_TYPE_STRING}},
        {"Add", SL_TYPE_I32, 2, {SL_TYPE_I32, SL_TYPE_I32}},
        {"Counter", SL_TYPE_I64, 0, {0}},
        {"Fill", SL_TYPE_U64, 1, {SL_TYPE_U64}},
        {"Upper", SL_TYPE_STRING, 1, {SL_TYPE_STRING}},
        {"Print", SL_TYPE_VOID, 1, {SL_TYPE_STRING}},
        {"Generation", SL_TYPE_U64, 0, {0}},
    };
    size_t nwant = sizeof want / sizeof want[0];
    CHECK_EQ(sl_sandbox_function_count(x.sb), nwant);
    for (size_t w = 0; w < nwant; w++) {
        int idx = sl_sandbox_find_function(x.sb, want[w].name);
        CHECK(idx >= 0);
        if (idx < 0) {
            printf("  %s not listed\n", want[w].name);
            continue;
        }
        const char *name = NULL;
        int ret = -1;
        const int *params = NULL;
        size_t np = 99;
        REQUIRE(sl_sandbox_function(x.sb, (size_t)idx, &name, &ret, &params, &np) == 0);
        CHECK(name && strcmp(name, want[w].name) == 0);
        CHECK_EQ(ret, want[w].ret);
        CHECK_EQ(np, want[w].n);
        for (int i = 0; i < want[w].n && (size_t)i < np; i++)
            CHECK_EQ(params[i], want[w].p[i]);
    }
    /* every listed function is one of those (no duplicates, nothing internal) */
    for (size_t i = 0; i < sl_sandbox_function_count(x.sb); i++) {
        const char *name = NULL;
        int ret;
        const int *params;
        size_t np;
        REQUIRE(sl_sandbox_function(x.sb, i, &name, &ret, &params, &np) == 0);
        CHECK(name != NULL);
        CHECK_EQ(sl_sandbox_find_function(x.sb, name), i);
    }
    const char *name;
    int ret;
    const int *params;
    size_t np;
    CHECK(sl_sandbox_function(x.sb, sl_sandbox_function_count(x.sb), &name, &ret, &params, &np) < 0);
    CHECK_EQ(sl_sandbox_find_function(x.sb, "NoSuchFunction"), SL_ENOTFOUND);
    CHECK_EQ(sl_sandbox_find_function(x.sb, "echo"), SL_ENOTFOUND); /* names are case-sensitive */
    env_close(&x);
}

static void echo(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    sl_value a = str("hello"), r;
    REQUIRE(call(x.sb, "Echo", &a, 1, &r) == 0);
    CHECK_EQ(r.type, SL_TYPE_STRING);
    CHECK_EQ(r.v.buf.len, 5);
    CHECK(r.v.buf.ptr && memcmp(r.v.buf.ptr, "hello", 6) == 0); /* NUL-terminated */

    /* input need not be NUL-terminated: only len bytes count */
    static const char raw[] = {'w', 'o', 'r', 'l', 'd', 'X', 'Y', 'Z'};
    a.v.buf.ptr = raw;
    a.v.buf.len = 5;
    REQUIRE(call(x.sb, "Echo", &a, 1, &r) == 0);
    CHECK_EQ(r.v.buf.len, 5);
    CHECK(r.v.buf.ptr && memcmp(r.v.buf.ptr, "world", 6) == 0);

    a = str("");
    REQUIRE(call(x.sb, "Echo", &a, 1, &r) == 0);
    CHECK_EQ(r.type, SL_TYPE_STRING);
    CHECK_EQ(r.v.buf.len, 0);
    CHECK(r.v.buf.ptr && ((const char *)r.v.buf.ptr)[0] == 0);

    /* a long string, every byte checked */
    enum { LONG = 20000 };
    char *big = malloc(LONG + 1);
    REQUIRE(big != NULL);
    for (int i = 0; i < LONG; i++)
        big[i] = (char)('a' + (i * 7) % 26);
    big[LONG] = 0;
    a = str(big);
    int rc = call(x.sb, "Echo", &a, 1, &r);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(r.v.buf.len, LONG);
        CHECK(r.v.buf.len == LONG && memcmp(r.v.buf.ptr, big, LONG + 1) == 0);
    } else {
        printf("  Echo(20000 bytes): %s\n", sl_sandbox_errmsg(x.sb));
    }
    free(big);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    env_close(&x);
}

static void add(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    static const struct {
        int32_t a, b, sum;
    } cases[] = {
        {2, 3, 5},
        {-7, 3, -4},
        {0, 0, 0},
        {INT32_MAX, 1, INT32_MIN}, /* wraps */
        {INT32_MIN, -1, INT32_MAX},
        {INT32_MAX, INT32_MAX, -2},
        {123456789, 987654321, 1111111110},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_value a[2] = {i32v(cases[i].a), i32v(cases[i].b)}, r;
        int rc = call(x.sb, "Add", a, 2, &r);
        CHECK_EQ(rc, 0);
        CHECK_EQ(r.type, SL_TYPE_I32);
        if (rc || r.v.i32 != cases[i].sum) {
            printf("  Add(%d, %d) = %d, want %d (%s)\n", cases[i].a, cases[i].b, r.v.i32, cases[i].sum,
                   sl_strerror(rc));
            t_failed_now = 1;
        }
    }
    env_close(&x);
}

static void counter_test(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(counter(x.sb), 1);
    CHECK_EQ(counter(x.sb), 2);
    CHECK_EQ(counter(x.sb), 3);
    env_close(&x);
    /* a second sandbox on the same guest starts from zero */
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(counter(x.sb), 1);
    env_close(&x);
}

static void fill_test(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    static const uint64_t sizes[] = {0, 1, 2, 255, 256, 4095, 4096, 4097, 3 * 4096 + 5, 100000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t sum = ~0ull;
        CHECK_EQ(fill(x.sb, sizes[i], &sum), 0);
        if (sum != fill_sum(sizes[i])) {
            printf("  Fill(%llu) = %llu, want %llu\n", (unsigned long long)sizes[i], (unsigned long long)sum,
                   (unsigned long long)fill_sum(sizes[i]));
            t_failed_now = 1;
        }
    }
    CHECK_EQ(fill_sum(1), 17);
    /* more than the heap: the guest reports it, the sandbox stays usable */
    sl_value a = u64v(64ull << 20), r;
    int rc = call(x.sb, "Fill", &a, 1, &r);
    CHECK_EQ(rc, SL_ENOSCRATCH);
    CHECK(has(sl_sandbox_errmsg(x.sb), "Fill"));
    printf("  Fill(64 MiB): %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x.sb));
    a = u64v(1ull << 40); /* past size_t on i686 */
    CHECK_EQ(call(x.sb, "Fill", &a, 1, &r), SL_ENOSCRATCH);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    uint64_t sum = 0;
    CHECK_EQ(fill(x.sb, 5000, &sum), 0);
    CHECK_EQ(sum, fill_sum(5000));
    env_close(&x);
}

static void upper(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    sl_value a = str("Hello, World 42!"), r;
    int rc = call(x.sb, "Upper", &a, 1, &r);
    CHECK_EQ(rc, 0);
    if (rc)
        printf("  Upper: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x.sb));
    CHECK_EQ(r.type, SL_TYPE_STRING);
    CHECK(r.v.buf.ptr && strcmp(r.v.buf.ptr, "HELLO, WORLD 42!") == 0);
    CHECK_EQ(r.v.buf.len, 16);
    CHECK_EQ(x.up.calls, 1);
    CHECK_EQ(x.up.bad_args, 0);

    /* the host function fails: the guest call reports it, no poisoning */
    x.up.fail = 1;
    a = str("abc");
    rc = call(x.sb, "Upper", &a, 1, &r);
    CHECK_EQ(rc, SL_EHOSTFN);
    CHECK(has(sl_sandbox_errmsg(x.sb), "HostUpper"));
    /* The host function's own reason reaches the caller through the guest. */
    CHECK(has(sl_sandbox_errmsg(x.sb), "refuses today"));
    printf("  failing host function: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x.sb));
    CHECK_EQ(x.up.calls, 2);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    x.up.fail = 0;
    REQUIRE(call(x.sb, "Upper", &a, 1, &r) == 0);
    CHECK(r.v.buf.ptr && strcmp(r.v.buf.ptr, "ABC") == 0);
    CHECK_EQ(x.up.calls, 3);

    /* registration is only allowed before init */
    static const int s1[] = {SL_TYPE_STRING};
    /* Registration stays open between calls (a sandbox made from a snapshot
     * needs it); a second registration of one name is refused. */
    CHECK_EQ(sl_sandbox_register(x.sb, "Late", SL_TYPE_STRING, s1, 1, host_upper, &x.up), 0);
    CHECK_EQ(sl_sandbox_register(x.sb, "Late", SL_TYPE_STRING, s1, 1, host_upper, &x.up), SL_EINVAL);
    env_close(&x);

    /* without HostUpper registered, Upper fails cleanly */
    char err[256];
    sl_sandbox *sb = NULL;
    REQUIRE(sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err) == 0);
    sl_sandbox_set_print(sb, capture_print, &x.pr);
    REQUIRE(sl_sandbox_init(sb) == 0);
    a = str("abc");
    rc = call(sb, "Upper", &a, 1, &r);
    CHECK(rc < 0);
    printf("  unregistered host function: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    CHECK_EQ(counter(sb), 1);
    sl_sandbox_free(sb);
}

static void print_test(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    int before = x.pr.count;
    sl_value a = str("hello from the guest"), r;
    REQUIRE(call(x.sb, "Print", &a, 1, &r) == 0);
    CHECK_EQ(r.type, SL_TYPE_VOID);
    CHECK_EQ(x.pr.count, before + 1);
    CHECK_EQ(x.pr.level, SL_LOG_PRINT);
    CHECK(strncmp(x.pr.text, "hello from the guest", 20) == 0);
    CHECK(strlen(x.pr.text) <= 21); /* at most a newline added */
    a = str("second line");
    REQUIRE(call(x.sb, "Print", &a, 1, &r) == 0);
    CHECK_EQ(x.pr.count, before + 2);
    CHECK(strncmp(x.pr.text, "second line", 11) == 0);
    /* other calls print nothing */
    CHECK_EQ(counter(x.sb), 1);
    CHECK_EQ(x.pr.count, before + 2);
    env_close(&x);
}

static void generation_test(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    uint64_t g0 = sl_sandbox_generation(x.sb);
    CHECK_EQ(generation_call(x.sb), g0);
    sl_snapshot *s1 = NULL, *s2 = NULL;
    REQUIRE(sl_sandbox_snapshot(x.sb, &s1) == 0);
    uint64_t g1 = sl_snapshot_generation(s1);
    CHECK_EQ(g1, g0 + 1);
    CHECK_EQ(sl_sandbox_generation(x.sb), g1);
    CHECK_EQ(generation_call(x.sb), g1);
    REQUIRE(sl_sandbox_snapshot(x.sb, &s2) == 0);
    CHECK_EQ(sl_snapshot_generation(s2), g1 + 1);
    CHECK_EQ(generation_call(x.sb), g1 + 1);
    REQUIRE(sl_sandbox_restore(x.sb, s1) == 0);
    CHECK_EQ(sl_sandbox_generation(x.sb), g1);
    CHECK_EQ(generation_call(x.sb), g1);
    REQUIRE(sl_sandbox_restore(x.sb, s2) == 0);
    CHECK_EQ(generation_call(x.sb), g1 + 1);
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    env_close(&x);
}

static void type_errors(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    sl_value r;
    sl_value one[1] = {i32v(1)};
    sl_value three[3] = {i32v(1), i32v(2), i32v(3)};
    sl_value is[2] = {i32v(1), str("2")};
    sl_value i64s[2] = {i32v(1), i32v(2)};
    i64s[1].type = SL_TYPE_I64;
    struct {
        const char *fn;
        const sl_value *args;
        size_t n;
    } bad[] = {
        {"Add", one, 1},   {"Add", three, 3}, {"Add", NULL, 0}, {"Add", is, 2},
        {"Add", i64s, 2},  {"Echo", one, 1},  {"Echo", NULL, 0}, {"Counter", one, 1},
        {"Fill", one, 1}, /* i32 where u64 is declared */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = call(x.sb, bad[i].fn, bad[i].args, bad[i].n, &r);
        if (rc != SL_ETYPE) {
            printf("  %s with bad arguments #%zu: %s, want SL_ETYPE\n", bad[i].fn, i, sl_strerror(rc));
            t_failed_now = 1;
        }
        CHECK(sl_sandbox_errmsg(x.sb)[0] != 0);
        CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    }
    printf("  type error message: %s\n", sl_sandbox_errmsg(x.sb));

    int rc = call(x.sb, "NoSuchFunction", NULL, 0, &r);
    CHECK_EQ(rc, SL_ENOTFOUND);
    CHECK(has(sl_sandbox_errmsg(x.sb), "NoSuchFunction"));
    printf("  unknown function: %s\n", sl_sandbox_errmsg(x.sb));
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    CHECK(call(x.sb, "", NULL, 0, &r) < 0);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    /* nothing above ran a function */
    CHECK_EQ(counter(x.sb), 1);
    env_close(&x);
}

static void snapshot_restore(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(counter(x.sb), 1);
    CHECK_EQ(counter(x.sb), 2);
    sl_snapshot *s = NULL;
    REQUIRE(sl_sandbox_snapshot(x.sb, &s) == 0);
    CHECK(sl_snapshot_memory_size(s) > 0);
    CHECK(sl_snapshot_page_table_size(s) > 0);
    CHECK_EQ(sl_snapshot_memory_size(s) % 4096, 0);
    CHECK_EQ(counter(x.sb), 3);
    REQUIRE(sl_sandbox_restore(x.sb, s) == 0);
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    CHECK_EQ(counter(x.sb), 3);
    CHECK_EQ(counter(x.sb), 4);
    /* restore again and again: always back to 2 */
    for (int i = 0; i < 5; i++) {
        REQUIRE(sl_sandbox_restore(x.sb, s) == 0);
        CHECK_EQ(counter(x.sb), 3);
    }
    /* everything else still works after a restore */
    sl_value a[2] = {i32v(40), i32v(2)}, r;
    REQUIRE(call(x.sb, "Add", a, 2, &r) == 0);
    CHECK_EQ(r.v.i32, 42);
    sl_value e = str("after restore");
    REQUIRE(call(x.sb, "Upper", &e, 1, &r) == 0);
    CHECK(r.v.buf.ptr && strcmp(r.v.buf.ptr, "AFTER RESTORE") == 0);
    uint64_t sum = 0;
    CHECK_EQ(fill(x.sb, 50000, &sum), 0);
    CHECK_EQ(sum, fill_sum(50000));
    /* the caller may drop its handle: the sandbox keeps the snapshot alive */
    sl_snapshot_free(s);
    CHECK_EQ(counter(x.sb), 4);
    env_close(&x);
}

static void aba(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    sl_snapshot *a = NULL, *b = NULL;
    CHECK_EQ(counter(x.sb), 1);
    REQUIRE(sl_sandbox_snapshot(x.sb, &a) == 0);
    CHECK_EQ(counter(x.sb), 2);
    CHECK_EQ(counter(x.sb), 3);
    REQUIRE(sl_sandbox_snapshot(x.sb, &b) == 0);
    CHECK(!same_id(a, b));
    CHECK_EQ(counter(x.sb), 4);
    REQUIRE(sl_sandbox_restore(x.sb, a) == 0);
    CHECK_EQ(counter(x.sb), 2);
    REQUIRE(sl_sandbox_restore(x.sb, b) == 0);
    CHECK_EQ(counter(x.sb), 4);
    CHECK_EQ(counter(x.sb), 5);
    REQUIRE(sl_sandbox_restore(x.sb, a) == 0);
    CHECK_EQ(counter(x.sb), 2);
    REQUIRE(sl_sandbox_restore(x.sb, b) == 0);
    REQUIRE(sl_sandbox_restore(x.sb, a) == 0); /* back to back, no call between */
    CHECK_EQ(counter(x.sb), 2);
    CHECK_EQ(sl_sandbox_generation(x.sb), sl_snapshot_generation(a));
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    env_close(&x);
}

static void family(const char *guest)
{
    env x, y;
    REQUIRE(env_open(&x, guest) == 0);
    if (env_open(&y, guest) != 0) {
        env_close(&x);
        REQUIRE(0);
    }
    sl_snapshot *sx = NULL, *sy = NULL, *sother = NULL;
    CHECK_EQ(counter(x.sb), 1);
    REQUIRE(sl_sandbox_snapshot(x.sb, &sx) == 0);
    CHECK_EQ(counter(y.sb), 1);
    CHECK_EQ(counter(y.sb), 2);
    REQUIRE(sl_sandbox_snapshot(y.sb, &sy) == 0);
    /* same ELF, but another sandbox: another family */
    int rc = sl_sandbox_restore(x.sb, sy);
    CHECK_EQ(rc, SL_EFAMILY);
    CHECK(sl_sandbox_errmsg(x.sb)[0] != 0);
    printf("  foreign snapshot: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(x.sb));
    /* the refused restore changed nothing */
    CHECK_EQ(sl_sandbox_status(x.sb), SL_STATUS_READY);
    CHECK_EQ(counter(x.sb), 2);
    CHECK_EQ(sl_sandbox_restore(y.sb, sx), SL_EFAMILY);
    CHECK_EQ(counter(y.sb), 3);

    /* other architecture and other configuration */
    env z;
    const char *other = strcmp(guest, "demo32") == 0 ? "demo" : "demo32";
    if (env_open(&z, other) == 0) {
        REQUIRE(sl_sandbox_snapshot(z.sb, &sother) == 0);
        CHECK_EQ(sl_sandbox_restore(x.sb, sother), SL_EFAMILY);
        CHECK_EQ(sl_sandbox_restore(z.sb, sx), SL_EFAMILY);
        env_close(&z);
    } else {
        t_failed_now = 1;
    }
    sl_config big = {.heap_size = 2u << 20};
    if (env_open_cfg(&z, guest, &big) == 0) {
        CHECK_EQ(sl_sandbox_restore(z.sb, sx), SL_EFAMILY);
        CHECK_EQ(counter(z.sb), 1);
        env_close(&z);
    } else {
        t_failed_now = 1;
    }
    /* its own snapshots still restore */
    REQUIRE(sl_sandbox_restore(x.sb, sx) == 0);
    CHECK_EQ(counter(x.sb), 2);
    sl_snapshot_free(sx);
    sl_snapshot_free(sy);
    sl_snapshot_free(sother);
    env_close(&x);
    env_close(&y);
}

static void identity(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(counter(x.sb), 1);
    CHECK_EQ(counter(x.sb), 2);
    sl_value a = str("some call"), r;
    REQUIRE(call(x.sb, "Echo", &a, 1, &r) == 0);
    sl_snapshot *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL;
    REQUIRE(sl_sandbox_snapshot(x.sb, &s1) == 0);
    /* restore, snapshot again: same state, same identity */
    REQUIRE(sl_sandbox_restore(x.sb, s1) == 0);
    REQUIRE(sl_sandbox_snapshot(x.sb, &s2) == 0);
    CHECK(same_id(s1, s2));
    CHECK_EQ(sl_snapshot_generation(s2), sl_snapshot_generation(s1) + 1);
    CHECK_EQ(sl_snapshot_memory_size(s1), sl_snapshot_memory_size(s2));
    /* a changed counter is another identity */
    CHECK_EQ(counter(x.sb), 3);
    REQUIRE(sl_sandbox_snapshot(x.sb, &s3) == 0);
    CHECK(!same_id(s1, s3));
    /* and back: equal again */
    REQUIRE(sl_sandbox_restore(x.sb, s1) == 0);
    REQUIRE(sl_sandbox_snapshot(x.sb, &s4) == 0);
    CHECK(same_id(s1, s4));
    char h1[65], h4[65], h3[65];
    sl_snapshot_id_hex(s1, h1);
    sl_snapshot_id_hex(s4, h4);
    sl_snapshot_id_hex(s3, h3);
    CHECK_EQ(strlen(h1), 64);
    CHECK(strcmp(h1, h4) == 0);
    CHECK(strcmp(h1, h3) != 0);
    uint8_t id[32];
    sl_snapshot_id(s1, id);
    char hx[65];
    for (int i = 0; i < 32; i++)
        snprintf(hx + 2 * i, 3, "%02x", id[i]);
    CHECK(strcmp(hx, h1) == 0);
    printf("  identity %s (generations %llu, %llu)\n", h1, (unsigned long long)sl_snapshot_generation(s1),
           (unsigned long long)sl_snapshot_generation(s4));
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    sl_snapshot_free(s3);
    sl_snapshot_free(s4);
    env_close(&x);
}

static void from_snapshot(const char *guest)
{
    env x;
    REQUIRE(env_open(&x, guest) == 0);
    CHECK_EQ(counter(x.sb), 1);
    CHECK_EQ(counter(x.sb), 2);
    sl_snapshot *s = NULL;
    REQUIRE(sl_sandbox_snapshot(x.sb, &s) == 0);
    CHECK_EQ(counter(x.sb), 3);
    sl_sandbox *nb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_snapshot(&nb, s, err, sizeof err);
    if (rc)
        printf("  new_from_snapshot: %s: %s\n", sl_strerror(rc), err);
    REQUIRE(rc == 0);
    /* the new sandbox holds its own reference; drop ours and the parent */
    uint64_t gen = sl_snapshot_generation(s);
    sl_snapshot_free(s);
    env_close(&x);
    CHECK_EQ(sl_sandbox_status(nb), SL_STATUS_READY);
    CHECK_EQ(sl_sandbox_function_count(nb), 7);
    CHECK(sl_sandbox_find_function(nb, "Fill") >= 0);
    CHECK_EQ(sl_sandbox_generation(nb), gen);
    CHECK_EQ(generation_call(nb), gen);
    CHECK_EQ(counter(nb), 3);
    CHECK_EQ(counter(nb), 4);
    sl_value a = str("from a snapshot"), r;
    REQUIRE(call(nb, "Echo", &a, 1, &r) == 0);
    CHECK(r.v.buf.ptr && strcmp(r.v.buf.ptr, "from a snapshot") == 0);
    uint64_t sum = 0;
    CHECK_EQ(fill(nb, 40000, &sum), 0);
    CHECK_EQ(sum, fill_sum(40000));
    /* it can snapshot and restore in turn */
    sl_snapshot *t = NULL;
    REQUIRE(sl_sandbox_snapshot(nb, &t) == 0);
    CHECK_EQ(sl_snapshot_generation(t), gen + 1);
    CHECK_EQ(counter(nb), 5);
    REQUIRE(sl_sandbox_restore(nb, t) == 0);
    CHECK_EQ(counter(nb), 5);
    /* two sandboxes from one snapshot are independent */
    sl_sandbox *nb2 = NULL;
    REQUIRE(sl_sandbox_new_from_snapshot(&nb2, t, err, sizeof err) == 0);
    CHECK_EQ(counter(nb2), 5);
    CHECK_EQ(counter(nb2), 6);
    CHECK_EQ(counter(nb), 6);
    sl_sandbox_free(nb2);
    sl_snapshot_free(t);
    sl_sandbox_free(nb);
}

/* Copy-on-write happens in the guest: dirtying N fresh heap pages takes about
 * N scratch pages, and a restore gives them back. A call that dirties no heap
 * (Fill(0)) first: what any call touches (message buffers, stack, ...) is
 * then already counted, so the difference is Fill's own. */
static void cow(const char *guest)
{
    enum { N = 64 };
    sl_config cfg = {.heap_size = 4u << 20};
    env x;
    REQUIRE(env_open_cfg(&x, guest, &cfg) == 0);
    sl_snapshot *s = NULL;
    REQUIRE(sl_sandbox_snapshot(x.sb, &s) == 0);
    REQUIRE(sl_sandbox_restore(x.sb, s) == 0);
    sl_sandbox_info i0, ia, i1, i2, i3, i4;
    REQUIRE(get_info(x.sb, &i0) == 0);
    CHECK_EQ(i0.snapshot_memory, sl_snapshot_memory_size(s));
    CHECK_EQ(i0.heap_size, 4u << 20);
    uint64_t sum = 0;
    REQUIRE(fill(x.sb, 0, &sum) == 0);
    REQUIRE(get_info(x.sb, &ia) == 0);
    printf("  Fill(0): scratch pages used %llu -> %llu, dirty %llu -> %llu\n",
           (unsigned long long)i0.scratch_pages_used, (unsigned long long)ia.scratch_pages_used,
           (unsigned long long)i0.dirty_pages, (unsigned long long)ia.dirty_pages);
    CHECK(ia.scratch_pages_used >= i0.scratch_pages_used);
    CHECK(ia.scratch_pages_used - i0.scratch_pages_used <= 8); /* stack, heap header */
    CHECK(ia.dirty_pages >= i0.dirty_pages);

    REQUIRE(fill(x.sb, N * 4096ull, &sum) == 0);
    CHECK_EQ(sum, fill_sum(N * 4096ull));
    REQUIRE(get_info(x.sb, &i1) == 0);
    uint64_t used = i1.scratch_pages_used - ia.scratch_pages_used;
    uint64_t dirty = i1.dirty_pages - ia.dirty_pages;
    printf("  Fill(%d pages): scratch pages used %llu -> %llu (+%llu), dirty %llu -> %llu (+%llu)\n", N,
           (unsigned long long)ia.scratch_pages_used, (unsigned long long)i1.scratch_pages_used,
           (unsigned long long)used, (unsigned long long)ia.dirty_pages, (unsigned long long)i1.dirty_pages,
           (unsigned long long)dirty);
    CHECK(i1.scratch_pages_used >= ia.scratch_pages_used);
    CHECK(used >= N && used <= N + 8);
    CHECK(i1.dirty_pages >= ia.dirty_pages);
    CHECK(dirty >= N && dirty <= N + 8);

    /* the same pages again: already private, nothing new */
    REQUIRE(fill(x.sb, N * 4096ull, &sum) == 0);
    REQUIRE(get_info(x.sb, &i2) == 0);
    CHECK(i2.scratch_pages_used - i1.scratch_pages_used <= 2);
    CHECK(i2.dirty_pages - i1.dirty_pages <= 2);

    /* restore gives every page back */
    REQUIRE(sl_sandbox_restore(x.sb, s) == 0);
    REQUIRE(get_info(x.sb, &i3) == 0);
    CHECK_EQ(i3.scratch_pages_used, i0.scratch_pages_used);
    CHECK_EQ(i3.dirty_pages, i0.dirty_pages);
    printf("  after restore: scratch pages used %llu, dirty %llu\n", (unsigned long long)i3.scratch_pages_used,
           (unsigned long long)i3.dirty_pages);

    /* and the copies are gone: the same calls copy the pages anew */
    REQUIRE(fill(x.sb, 0, &sum) == 0);
    REQUIRE(fill(x.sb, N * 4096ull, &sum) == 0);
    REQUIRE(get_info(x.sb, &i4) == 0);
    CHECK_EQ(i4.scratch_pages_used, i1.scratch_pages_used);

    /* more pages, more copies */
    REQUIRE(sl_sandbox_restore(x.sb, s) == 0);
    REQUIRE(fill(x.sb, 0, &sum) == 0);
    REQUIRE(get_info(x.sb, &ia) == 0);
    REQUIRE(fill(x.sb, 4 * N * 4096ull, &sum) == 0);
    CHECK_EQ(sum, fill_sum(4 * N * 4096ull));
    REQUIRE(get_info(x.sb, &i4) == 0);
    uint64_t used4 = i4.scratch_pages_used - ia.scratch_pages_used;
    uint64_t dirty4 = i4.dirty_pages - ia.dirty_pages;
    printf("  Fill(%d pages): +%llu scratch pages, +%llu dirty\n", 4 * N, (unsigned long long)used4,
           (unsigned long long)dirty4);
    CHECK(used4 >= 4 * N && used4 <= 4 * N + 8);
    CHECK(dirty4 >= 4 * N && dirty4 <= 4 * N + 8);
    CHECK_EQ(i4.generation, sl_snapshot_generation(s));
    CHECK_EQ(i4.status, SL_STATUS_READY);
    sl_snapshot_free(s);
    env_close(&x);
}

#define BOTH(fn)                                                                                             \
    static void test_##fn##_demo(void) { fn("demo"); }                                                      \
    static void test_##fn##_demo32(void) { fn("demo32"); }

BOTH(functions)
BOTH(echo)
BOTH(add)
BOTH(counter_test)
BOTH(fill_test)
BOTH(upper)
BOTH(print_test)
BOTH(generation_test)
BOTH(type_errors)
BOTH(snapshot_restore)
BOTH(aba)
BOTH(family)
BOTH(identity)
BOTH(from_snapshot)
BOTH(cow)

static void test_bad_files(void)
{
    sl_sandbox *sb = (sl_sandbox *)1;
    char err[256] = "";
    CHECK(sl_sandbox_new_from_file(&sb, guest_path("no-such-guest"), NULL, err, sizeof err) < 0);
    CHECK(sb == NULL);
    CHECK(err[0] != 0);
    static const char junk[] = "this is not an ELF file at all, just some bytes";
    sb = (sl_sandbox *)1;
    CHECK(sl_sandbox_new_from_elf(&sb, junk, sizeof junk, NULL, err, sizeof err) < 0);
    CHECK(sb == NULL);
    sl_sandbox_free(NULL);
    sl_snapshot_free(NULL);
}

int main(void)
{
    RUN_ARCH(T_NONE, test_bad_files);
#define BOTH_RUN(fn)                                                                                         \
    RUN_ARCH(T_AMD64, test_##fn##_demo);                                                                     \
    RUN_ARCH(T_I686, test_##fn##_demo32);
    BOTH_RUN(functions)
    BOTH_RUN(echo)
    BOTH_RUN(add)
    BOTH_RUN(counter_test)
    BOTH_RUN(fill_test)
    BOTH_RUN(upper)
    BOTH_RUN(print_test)
    BOTH_RUN(generation_test)
    BOTH_RUN(type_errors)
    BOTH_RUN(snapshot_restore)
    BOTH_RUN(aba)
    /* both guests in each: restores across architectures */
    RUN_ARCH(T_AMD64 | T_I686, test_family_demo);
    RUN_ARCH(T_AMD64 | T_I686, test_family_demo32);
    BOTH_RUN(identity)
    BOTH_RUN(from_snapshot)
    BOTH_RUN(cow)
    T_EXIT();
}

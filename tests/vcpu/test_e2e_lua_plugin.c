/* The Lua plugin guest (guests/lua_plugin, docs/lua-plugin.md) on both
 * architectures: a plugin library loaded with Load, snapshotted, and
 * requests (Eval, Call with JSON) each followed by a restore, so that
 * nothing one request does is visible in the next; requests that break the
 * Lua state on purpose; Lua errors as failed calls with a traceback; out of
 * memory and endless loops; the JSON codec on hostile input; and host
 * functions called from Lua as host.NAME(...), with the types of the
 * signature the host reports at call time (sl.host_signatures, ABI 2.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

/* The plugin library every test loads before its snapshot. */
static const char LIB[] =
    "counter = 0\n"
    "function poly(a, b)\n"
    "  counter = counter + 1\n"
    "  leaked = (leaked or 0) + 1\n"
    "  package.loaded.req = (package.loaded.req or 0) + 1\n"
    "  local dirty = rawget(_G, 'x_leak') ~= nil or rawget(_G, 'y_leak') ~= nil or package.loaded.y_leak ~= nil\n"
    "  return {sum = a + b, prod = a * b, count = counter, leaked = leaked, pk = package.loaded.req, dirty = dirty}\n"
    "end\n"
    "function setg(name, v) rawset(_G, name, v); package.loaded[name] = v; return v end\n"
    "function echo(...) return ... end\n"
    "function nargs(...) return select('#', ...), (...) == nil end\n"
    "function types(...)\n"
    "  local r = {}\n"
    "  for i = 1, select('#', ...) do local v = select(i, ...); r[i] = math.type(v) or type(v) end\n"
    "  return r\n"
    "end\n"
    "function sum(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s end\n"
    "function fail(how)\n"
    "  if how == 'table' then error({code = 42, why = 'bad'}) end\n"
    "  error('plugin failure: ' .. tostring(how))\n"
    "end\n"
    "function shout(s) return host.HostUpper(s) .. '!' end\n"
    "function none() end\n"
    "function only_nil() return nil end\n"
    "function three() return 1, 'two', {3} end\n"
    "function retfn() return print end\n";

/* ------------------------------------------------------------ host functions */

typedef struct hostctx {
    char buf[4096];
    int void_calls;
} hostctx;

static int h_upper(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    hostctx *h = user;
    (void)n;
    if (a[0].v.buf.len >= sizeof h->buf) {
        snprintf(err, errlen, "too long");
        return -1;
    }
    const char *s = a[0].v.buf.ptr;
    for (size_t i = 0; i < a[0].v.buf.len; i++)
        h->buf[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    ret->v.buf.ptr = h->buf;
    ret->v.buf.len = a[0].v.buf.len;
    return 0;
}

static int h_add(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.i64 = (int64_t)((uint64_t)a[0].v.i64 + (uint64_t)a[1].v.i64);
    return 0;
}

static int h_add32(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.i32 = a[0].v.i32 + a[1].v.i32;
    return 0;
}

static int h_not(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.b = !a[0].v.b;
    return 0;
}

static int h_half(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.f64 = a[0].v.f64 / 2;
    return 0;
}

static int h_f32(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.f32 = a[0].v.f32 * 2;
    return 0;
}

static int h_u64(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)err, (void)errlen;
    ret->v.u64 = a[0].v.u64;
    return 0;
}

static int h_void(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)a, (void)n, (void)ret, (void)err, (void)errlen;
    ((hostctx *)user)->void_calls++;
    return 0;
}

static int h_fail(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    (void)user, (void)n, (void)ret;
    snprintf(err, errlen, "host says no: %.*s", (int)a[0].v.buf.len, (const char *)a[0].v.buf.ptr);
    return -1;
}

/* A different HostAdd, for a sandbox made from the snapshot elsewhere. */
static int h_concat(void *user, const sl_value *a, size_t n, sl_value *ret, char *err, size_t errlen)
{
    hostctx *h = user;
    (void)n, (void)err, (void)errlen;
    int len = snprintf(h->buf, sizeof h->buf, "%.*s%.*s", (int)a[0].v.buf.len, (const char *)a[0].v.buf.ptr,
                       (int)a[1].v.buf.len, (const char *)a[1].v.buf.ptr);
    ret->v.buf.ptr = h->buf;
    ret->v.buf.len = (size_t)len;
    return 0;
}

static int register_all(sl_sandbox *sb, hostctx *h)
{
    static const int s1[] = {SL_TYPE_STRING}, ii[] = {SL_TYPE_I64, SL_TYPE_I64}, i32[] = {SL_TYPE_I32, SL_TYPE_I32},
                     b1[] = {SL_TYPE_BOOL}, f1[] = {SL_TYPE_F64}, g1[] = {SL_TYPE_F32}, u1[] = {SL_TYPE_U64};
    int rc = 0;
    rc |= sl_sandbox_register(sb, "HostUpper", SL_TYPE_STRING, s1, 1, h_upper, h);
    rc |= sl_sandbox_register(sb, "HostAdd", SL_TYPE_I64, ii, 2, h_add, h);
    rc |= sl_sandbox_register(sb, "HostAdd32", SL_TYPE_I32, i32, 2, h_add32, h);
    rc |= sl_sandbox_register(sb, "HostNot", SL_TYPE_BOOL, b1, 1, h_not, h);
    rc |= sl_sandbox_register(sb, "HostHalf", SL_TYPE_F64, f1, 1, h_half, h);
    rc |= sl_sandbox_register(sb, "HostF32", SL_TYPE_F32, g1, 1, h_f32, h);
    rc |= sl_sandbox_register(sb, "HostU64", SL_TYPE_U64, u1, 1, h_u64, h);
    rc |= sl_sandbox_register(sb, "HostVoid", SL_TYPE_VOID, NULL, 0, h_void, h);
    rc |= sl_sandbox_register(sb, "HostFail", SL_TYPE_STRING, s1, 1, h_fail, h);
    return rc;
}

/* ------------------------------------------------------------------ requests */

static char *got; /* the last result, or the error message of a failed call */
static size_t got_len;

static int request(sl_sandbox *sb, const char *fn, const char *a, size_t alen, const char *b, size_t blen)
{
    sl_value args[2] = {{.type = SL_TYPE_STRING, .v.buf = {a, alen}}, {.type = SL_TYPE_STRING, .v.buf = {b, blen}}};
    sl_value r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, fn, args, b ? 2 : 1, &r);
    const char *s = rc ? sl_sandbox_errmsg(sb) : r.type == SL_TYPE_STRING ? (const char *)r.v.buf.ptr : "";
    size_t n = rc ? strlen(s) : r.type == SL_TYPE_STRING ? r.v.buf.len : 0;
    free(got);
    got = malloc(n + 1);
    if (!got) {
        printf("  out of memory\n");
        exit(1);
    }
    memcpy(got, s, n);
    got[n] = 0;
    got_len = n;
    return rc;
}

static int eval(sl_sandbox *sb, const char *code) { return request(sb, "Eval", code, strlen(code), NULL, 0); }
static int callj(sl_sandbox *sb, const char *fn, const char *json)
{
    return request(sb, "Call", fn, strlen(fn), json, strlen(json));
}

#define EXPECT(expr, want)                                                                                    \
    do {                                                                                                      \
        int rc_ = (expr);                                                                                     \
        if (rc_ != 0 || strcmp(got, (want)) != 0) {                                                           \
            printf("  %s:%d: %s: rc %d, '%.400s', want '%.400s'\n", __FILE__, __LINE__, #expr, rc_, got, want); \
            t_failed_now = 1;                                                                                 \
        }                                                                                                     \
    } while (0)

/* A failed call with code `code` whose message holds `needle`. */
#define EXPECT_FAIL(expr, code, needle)                                                                      \
    do {                                                                                                     \
        int rc_ = (expr);                                                                                    \
        if (rc_ != (code) || !has(got, (needle))) {                                                          \
            printf("  %s:%d: %s: rc %d (want %d), '%.600s', want '%s' in it\n", __FILE__, __LINE__, #expr, rc_, \
                   (int)(code), got, needle);                                                                \
            t_failed_now = 1;                                                                                \
        }                                                                                                    \
    } while (0)

/* A new sandbox of `guest` with the host functions, initialised, LIB loaded. */
static sl_sandbox *open_plugin(const char *guest, hostctx *h)
{
    char err[512];
    sl_sandbox *sb;
    if (sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err)) {
        printf("  %s: %s\n", guest, err);
        return NULL;
    }
    if (register_all(sb, h) || sl_sandbox_init(sb)) {
        printf("  %s: %s\n", guest, sl_sandbox_errmsg(sb));
        sl_sandbox_free(sb);
        return NULL;
    }
    if (request(sb, "Load", LIB, strlen(LIB), NULL, 0)) {
        printf("  Load: %s\n", got);
        sl_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

/* ------------------------------------------------------------------ tests */

/* 1,000 requests, a restore to the post-Load snapshot after each: every
 * result exact, nothing from one request (globals, package.loaded) seen in
 * the next. */
static void requests(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    char want[512], code[512], args[128];
    int bad = 0;
    for (int i = 0; i < 1000 && bad < 5; i++) {
        int rc;
        if (i % 3 == 0) {
            long long a = i * 7919LL - 3000000, b = -(i % 13) - 1;
            snprintf(args, sizeof args, "[%lld, %lld]", a, b);
            rc = callj(sb, "poly", args);
            snprintf(want, sizeof want,
                     "{\"count\":1,\"dirty\":false,\"leaked\":1,\"pk\":1,\"prod\":%lld,\"sum\":%lld}", a * b, a + b);
        } else if (i % 3 == 1) {
            snprintf(code, sizeof code,
                     "x_leak = (x_leak or 0) + 1; print('req', %d) return x_leak, rawget(_G, 'y_leak'), "
                     "package.loaded.y_leak, package.loaded.req, counter, rawget(_G, 'leaked'), %d * 3",
                     i, i);
            rc = eval(sb, code);
            snprintf(want, sizeof want, "req\t%d\n1\tnil\tnil\tnil\t0\tnil\t%d", i, i * 3);
        } else {
            snprintf(args, sizeof args, "[\"y_leak\", \"v%d\"]", i);
            rc = callj(sb, "setg", args);
            snprintf(want, sizeof want, "\"v%d\"", i);
        }
        if (rc || strcmp(got, want) != 0) {
            printf("  request %d: rc %d, '%s', want '%s'\n", i, rc, got, want);
            bad++;
        }
        if ((rc = sl_sandbox_restore(sb, snap))) {
            printf("  restore after request %d: %s\n", i, sl_sandbox_errmsg(sb));
            bad++;
        }
    }
    CHECK(bad == 0);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

/* Requests that break the Lua state on purpose; after a restore the next
 * request sees a pristine state. None of them poisons the sandbox. */
static void corruption(const char *guest)
{
    static const char *const evil[] = {
        "debug.sethook(function() error('x') end, '', 1) return 1",
        "setmetatable(_G, {__index = function() error('boom') end, __newindex = function() error('nope') end})",
        "collectgarbage('stop') local t = {} while true do t[#t + 1] = {} end",
        "return #string.rep('x', 1 << 40)",
        "return #string.rep('x', 1 << 30)",
        "string.rep = nil; print = function() error('p') end; tostring = function() error('t') end; "
        "pcall = error; error = nil",
        "os.exit(3)",
        "os.exit(true, true)",
        "package.loaded.string = nil; string = nil; table.concat = nil; json.encode = nil; host = nil",
        "getmetatable('').__index = function() error('strings broken') end",
        "debug.setmetatable(1, {__index = function() error('numbers broken') end})",
        "local co = coroutine.wrap(function() while true do coroutine.yield() end end) co() co()",
        "return load(string.dump(function() return 1 end))()",
    };
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        int rc = eval(sb, evil[i]);
        if ((rc != 0 && rc != SL_EABORT) || sl_sandbox_status(sb) != SL_STATUS_READY) {
            printf("  '%s': rc %d, status %d: %s\n", evil[i], rc, sl_sandbox_status(sb), got);
            t_failed_now = 1;
        }
        if (i == 1) /* the damage is real until the restore */
            EXPECT_FAIL(eval(sb, "return undefined_global"), SL_EABORT, "boom");
        if (i == 9)
            EXPECT_FAIL(eval(sb, "return ('x'):upper()"), SL_EABORT, "strings broken");
        REQUIRE(sl_sandbox_restore(sb, snap) == 0);
        EXPECT(eval(sb, "return type(print), type(tostring), type(pcall), type(error), type(string.rep), "
                        "getmetatable(_G) == nil, debug.gethook() == nil, collectgarbage('isrunning'), "
                        "('x'):rep(3), debug.getmetatable(1) == nil, type(os.exit), type(host), type(json.encode)"),
               "function\tfunction\tfunction\tfunction\tfunction\ttrue\ttrue\ttrue\txxx\ttrue\tfunction\ttable\t"
               "function");
        EXPECT(eval(sb, "print('p', 1) return pcall(error, 'e')"), "p\t1\nfalse\te");
        EXPECT(callj(sb, "poly", "[2, 3]"), "{\"count\":1,\"dirty\":false,\"leaked\":1,\"pk\":1,\"prod\":6,\"sum\":5}");
        EXPECT(callj(sb, "shout", "[\"hi\"]"), "\"HI!\"");
    }
    /* os.exit is disabled, not merely survived. */
    EXPECT_FAIL(eval(sb, "os.exit(0)"), SL_EABORT, "os.exit is not available");
    /* Binary chunks are refused. */
    EXPECT(eval(sb, "return load(string.dump(function() return 1 end))"),
           "nil\tattempt to load a binary chunk (mode is 't')");
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

/* Lua errors are ordinary failed calls with Lua's message and a traceback,
 * and the next call works without a restore. */
static void errors(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    struct {
        int call; /* 0: Eval(a); 1: Call(a, b) */
        const char *a, *b, *needle, *needle2;
    } cases[] = {
        {0, "x = = 1", NULL, "Eval:1: unexpected symbol near '='", "stack traceback:"},
        {0, "return (", NULL, "Eval:1:", "stack traceback:"},
        {0, "local t = nil; return t.x", NULL, "Eval:1: attempt to index a nil value (local 't')",
         "in main chunk"},
        {0, "error('plain')", NULL, "Eval:1: plain", "[C]: in function 'error'"},
        {0, "error({code = 7})", NULL, "(error object is a table value: {\"code\":7})", "stack traceback:"},
        {0, "error({f = print})", NULL, "(error object is a table value)", "stack traceback:"},
        {0, "error()", NULL, "(error object is a nil value)", "stack traceback:"},
        {0, "error(setmetatable({}, {__tostring = function() return 'custom' end}))", NULL, "custom",
         "stack traceback:"},
        {1, "fail", "[\"why\"]", "Load:", "plugin failure: why"},
        {1, "fail", "[\"why\"]", "in function 'fail'", "stack traceback:"},
        {1, "fail", "[\"table\"]", "(error object is a table value: {\"code\":42,\"why\":\"bad\"})",
         "in function 'fail'"},
        {1, "nope", "[]", "Call: no global function 'nope'", "stack traceback:"},
        {1, "counter", "[]", "Call: global 'counter' is a number, not a function", "stack traceback:"},
        {1, "retfn", "[]", "JSON: cannot encode a function value", "stack traceback:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cases[i].call ? callj(sb, cases[i].a, cases[i].b) : eval(sb, cases[i].a);
        if (rc != SL_EABORT || !has(got, cases[i].needle) || !has(got, cases[i].needle2)) {
            printf("  '%s': rc %d, '%s', want '%s' and '%s'\n", cases[i].a, rc, got, cases[i].needle,
                   cases[i].needle2);
            t_failed_now = 1;
        }
        CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
        EXPECT(eval(sb, "return 40 + 2, counter"), "42\t0");
    }
    /* A name is the whole string: "echo\0x" is not echo. */
    EXPECT_FAIL(request(sb, "Call", "echo\0x", 6, "[1]", 3), SL_EABORT, "the function name contains a NUL byte");
    /* A syntax error in Load fails Load and leaves the library as it was. */
    EXPECT_FAIL(request(sb, "Load", "function broken(", 16, NULL, 0), SL_EABORT, "Load:1:");
    EXPECT(callj(sb, "echo", "[1]"), "1");
    sl_sandbox_free(sb);
}

/* Out of memory is Lua's "not enough memory"; an endless loop is stopped by
 * the call timeout; a restore brings the sandbox back after either. */
static void limits(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    EXPECT_FAIL(eval(sb, "local t={} while true do t[#t+1]=string.rep('x',1e6)..#t end"), SL_EABORT,
                "not enough memory");
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    EXPECT(eval(sb, "return #string.rep('y', 1e6)"), "1000000");
    EXPECT_FAIL(eval(sb, "local t = {} for i = 1, 1e9 do t[i] = i end"), SL_EABORT, "not enough memory");
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    /* Deep Lua recursion ends in Lua's stack limit or its memory, cleanly. */
    int rc = eval(sb, "local function f(n) return f(n + 1) + 1 end return f(1)");
    if (rc != SL_EABORT || !(has(got, "stack overflow") || has(got, "not enough memory"))) {
        printf("  deep recursion: rc %d, '%.300s'\n", rc, got);
        t_failed_now = 1;
    }
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    EXPECT(callj(sb, "poly", "[1, 1]"), "{\"count\":1,\"dirty\":false,\"leaked\":1,\"pk\":1,\"prod\":1,\"sum\":2}");

    /* Deep C recursion: Lua's own limit (200 C levels) or, first, the end of
     * the call stack (a fault that poisons the sandbox); a restore either way. */
    rc = eval(sb, "local function f(s) return (s:gsub('.', f)) end return f('ab')");
    if (!(rc == SL_EFAULT && has(got, "stack overflow")) && !(rc == SL_EABORT && has(got, "C stack overflow"))) {
        printf("  C recursion: rc %d, '%.300s'\n", rc, got);
        t_failed_now = 1;
    }
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    EXPECT(eval(sb, "return ('ab'):gsub('.', {a = 1})"), "1b\t2");

    sl_sandbox_set_timeout(sb, 300);
    EXPECT_FAIL(eval(sb, "while true do end"), SL_ETIMEOUT, "timeout");
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_POISONED);
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    EXPECT(eval(sb, "return counter, 6 * 7"), "0\t42");
    EXPECT_FAIL(eval(sb, "local function f() return f() end return f()"), SL_ETIMEOUT, "timeout");
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    sl_sandbox_set_timeout(sb, 0);
    EXPECT(callj(sb, "echo", "[1, \"a\"]"), "[1,\"a\"]");
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

/* Call's JSON both ways: round trips, the number types, nulls, results,
 * and every kind of bad input as a clear error. */
static void json(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    EXPECT(callj(sb, "echo",
                 "[{\"a\": [1, 2.5, \"x\\n\\\"\\\\\\u00e9\\ud83d\\ude00\\u0001\\/\", true, false, null],"
                 " \"b\": {\"c\": {}}, \"d\": [], \"e\": \"\", \"f\": \"caf\xc3\xa9 \xe2\x82\xac\"}]"),
           "{\"a\":[1,2.5,\"x\\n\\\"\\\\\xc3\xa9\xf0\x9f\x98\x80\\u0001/\",true,false,null],\"b\":{\"c\":{}},\"d\":[],"
           "\"e\":\"\",\"f\":\"caf\xc3\xa9 \xe2\x82\xac\"}");
    static const char nums[] = "[1, 1.0, -0, 1e2, 9007199254740993, 9223372036854775807, 9223372036854775808, "
                               "-9223372036854775808, 0.1, -2.5e-3, 1E+300, -0.0]";
    EXPECT(callj(sb, "types", nums), "[\"integer\",\"float\",\"integer\",\"float\",\"integer\",\"integer\",\"float\","
                                     "\"integer\",\"float\",\"float\",\"float\",\"float\"]");
    EXPECT(callj(sb, "echo", nums), "[1,1.0,0,100.0,9007199254740993,9223372036854775807,9.223372036854776e+18,"
                                    "-9223372036854775808,0.1,-0.0025,1e+300,-0.0]");
    EXPECT(eval(sb, "return json.encode(1/3), json.encode(2^53), json.encode(math.mininteger), json.encode(-1e-7)"),
           "0.3333333333333333\t9007199254740992.0\t-9223372036854775808\t-1e-07");
    EXPECT(callj(sb, "nargs", "[null, 1, null]"), "[3,true]");
    EXPECT(callj(sb, "nargs", ""), "[0,true]");
    EXPECT(callj(sb, "nargs", " \t\n[ ] "), "[0,true]");
    EXPECT(callj(sb, "echo", "[[null], {\"n\": null}]"), "[[null],{\"n\":null}]");
    EXPECT(callj(sb, "none", "[]"), "null");
    EXPECT(callj(sb, "only_nil", "[]"), "null");
    EXPECT(callj(sb, "three", "[]"), "[1,\"two\",[3]]");
    EXPECT(callj(sb, "echo", "[{\"b\":1,\"a\":2,\"\":3,\"ab\":4,\"a\":5}]"), "{\"\":3,\"a\":5,\"ab\":4,\"b\":1}");
    EXPECT(callj(sb, "echo", "[\"\\u0000\\u001f\\t\\b\\f\\r\"]"), "\"\\u0000\\u001f\\t\\b\\f\\r\"");
    EXPECT(eval(sb, "local a = json.decode('[1,null,3]') return a[2] == json.null, #a, json.encode(json.decode('{}')), "
                    "json.encode(json.object()), json.encode({}), json.encode(json.array({}))"),
           "true\t3\t{}\t{}\t[]\t[]");

    /* A long array: the sum is computed here too. */
    size_t cap = 64 * 1024, n = 0;
    char *big = malloc(cap);
    REQUIRE(big);
    long long want = 0;
    n += (size_t)snprintf(big + n, cap - n, "[[");
    for (int i = 1; i <= 5000; i++) {
        n += (size_t)snprintf(big + n, cap - n, "%s%d", i > 1 ? "," : "", i * 3 - 7000);
        want += i * 3 - 7000;
    }
    snprintf(big + n, cap - n, "]]");
    char wants[32];
    snprintf(wants, sizeof wants, "%lld", want);
    EXPECT(callj(sb, "sum", big), wants);

    /* Nesting: 200 levels pass, 201 do not. */
    n = 0;
    for (int i = 0; i < 200; i++)
        big[n++] = '[';
    for (int i = 0; i < 200; i++)
        big[n++] = ']';
    big[n] = 0;
    char *inner = strndup(big + 1, n - 2);
    REQUIRE(inner);
    EXPECT(callj(sb, "echo", big), inner);
    free(inner);
    n = 0;
    for (int i = 0; i < 201; i++)
        big[n++] = '[';
    for (int i = 0; i < 201; i++)
        big[n++] = ']';
    big[n] = 0;
    EXPECT_FAIL(callj(sb, "echo", big), SL_EABORT, "JSON: nesting deeper than 200");
    memset(big, '[', 30000);
    big[30000] = 0;
    EXPECT_FAIL(callj(sb, "echo", big), SL_EABORT, "JSON: nesting deeper than 200");
    free(big);

    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"[1,]", "unexpected character at byte 4"},
        {"[1 2]", "expected ',' or ']'"},
        {"[{\"a\" 1}]", "expected ':'"},
        {"[{a: 1}]", "expected a string key"},
        {"[\"\\x\"]", "invalid escape"},
        {"[\"\\u12\"]", "invalid \\u escape"},
        {"[\"\\ud800\"]", "unpaired surrogate"},
        {"[\"\\udc00x\"]", "unpaired surrogate"},
        {"[\"\\ud800\\u0041\"]", "unpaired surrogate"},
        {"[", "unexpected end of text"},
        {"[\"unterminated", "unterminated string"},
        {"[01]", "expected ',' or ']'"},
        {"[1.]", "invalid number"},
        {"[.5]", "unexpected character"},
        {"[-]", "invalid number"},
        {"[1e]", "invalid number"},
        {"[+1]", "unexpected character"},
        {"[0x10]", "expected ',' or ']'"},
        {"[NaN]", "unexpected character"},
        {"[Infinity]", "unexpected character"},
        {"[tru]", "unexpected character"},
        {"['a']", "unexpected character"},
        {"[1] x", "unexpected text after the value"},
        {"[1] // c", "unexpected text after the value"},
        {"{\"a\": 1}", "the arguments must be an array"},
        {"\"a\"", "the arguments must be an array"},
        {"[1e999]", "number out of range"},
        {"[-1e400]", "number out of range"},
        {"[\"\xff\"]", "invalid UTF-8"},
        {"[\"\xc0\x80\"]", "invalid UTF-8"},
        {"[\"\xe0\x80\xaf\"]", "invalid UTF-8"},
        {"[\"\xed\xa0\x80\"]", "invalid UTF-8"},
        {"[\"\xf4\x90\x80\x80\"]", "invalid UTF-8"},
        {"[\"\xe2\x82\"]", "invalid UTF-8"},
        {"[\"a\x01\"]", "control character"},
        {"[\"a\nb\"]", "control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = callj(sb, "echo", bad[i].json);
        if (rc != SL_EABORT || !has(got, "JSON: ") || !has(got, bad[i].needle)) {
            printf("  bad JSON '%s': rc %d, '%s', want '%s'\n", bad[i].json, rc, got, bad[i].needle);
            t_failed_now = 1;
        }
    }
    char longnum[512];
    memset(longnum, '1', sizeof longnum);
    longnum[0] = '[';
    memcpy(longnum + 500, "]", 2);
    EXPECT_FAIL(callj(sb, "echo", longnum), SL_EABORT, "JSON: number too long");
    EXPECT(callj(sb, "echo", "[123456789012345678901234567890]"), "1.2345678901234568e+29");

    static const struct {
        const char *code, *needle;
    } unenc[] = {
        {"local t = {} t.t = t return json.encode(t)", "cannot encode a table that contains itself"},
        {"local t = {} return json.encode({t, {t}})", ""},
        {"return json.encode(0/0)", "cannot encode NaN or infinity"},
        {"return json.encode({math.huge})", "cannot encode NaN or infinity"},
        {"return json.encode({1, 2, x = 3})", "both string and integer keys"},
        {"return json.encode({[true] = 1})", "a boolean key"},
        {"return json.encode({[1.5] = 1})", "a non-integer number key"},
        {"return json.encode({[{}] = 1})", "a table key"},
        {"return json.encode({1, nil, 3})", "holes or keys outside 1..n"},
        {"return json.encode({[0] = 1})", "holes or keys outside 1..n"},
        {"return json.encode(print)", "cannot encode a function value"},
        {"return json.encode(coroutine.create(print))", "cannot encode a thread value"},
        {"return json.encode(io.stdout)", "cannot encode a userdata value"},
        {"return json.encode('\\xff')", "not valid UTF-8"},
        {"return json.encode({['\\xc0\\x80'] = 1})", "not valid UTF-8"},
        {"local t = {} for i = 1, 300 do t = {t} end return json.encode(t)", "nesting deeper than 200"},
        {"return json.decode('[1,]')", "Eval:1: JSON: unexpected character at byte 4"},
    };
    for (size_t i = 0; i < sizeof unenc / sizeof unenc[0]; i++) {
        int rc = eval(sb, unenc[i].code);
        int want_ok = !*unenc[i].needle; /* a table seen twice without a cycle is fine */
        if (want_ok ? rc != 0 : rc != SL_EABORT || !has(got, unenc[i].needle)) {
            printf("  '%s': rc %d, '%s', want '%s'\n", unenc[i].code, rc, got, unenc[i].needle);
            t_failed_now = 1;
        }
    }
    EXPECT(eval(sb, "return json.encode({{}, {{}}})"), "[[],[[]]]");
    EXPECT(callj(sb, "echo", "[1]"), "1");
    sl_sandbox_free(sb);
}

/* host.NAME(...) with the types of the host's signature, looked up at call
 * time: wrong types and unknown names are Lua errors. */
static void host(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    EXPECT(eval(sb, "return host.HostUpper('abc')"), "ABC");
    EXPECT(eval(sb, "return host.HostUpper('')"), "");
    EXPECT(eval(sb, "return host.HostAdd(2^40, -5), math.type(host.HostAdd(1, 2))"), "1099511627771\tinteger");
    EXPECT(eval(sb, "return host.HostAdd(math.maxinteger, 1) == math.mininteger"), "true");
    EXPECT(eval(sb, "return host.HostAdd32(-7, 3), host.HostAdd32(2147483647, 0)"), "-4\t2147483647");
    EXPECT(eval(sb, "return host.HostNot(true), host.HostNot(false)"), "false\ttrue");
    EXPECT(eval(sb, "return host.HostHalf(3), host.HostHalf(-1.5)"), "1.5\t-0.75");
    EXPECT(eval(sb, "return host.HostF32(0.25), math.type(host.HostF32(1))"), "0.5\tfloat");
    EXPECT(eval(sb, "return host.HostU64(7), math.type(host.HostU64(7)), host.HostU64(2^63) == 2^63"),
           "7\tinteger\ttrue");
    EXPECT(eval(sb, "return select('#', host.HostVoid())"), "0");
    CHECK_EQ(h.void_calls, 1);
    EXPECT(callj(sb, "shout", "[\"hi\"]"), "\"HI!\"");
    EXPECT(eval(sb, "return pcall(host.HostAdd, 1)"), "false\thost.HostAdd: expected 2 arguments, got 1");

    static const struct {
        const char *code, *needle;
    } bad[] = {
        {"return host.HostAdd('2', 3)", "host.HostAdd: argument 1 must be an integer (i64), got string"},
        {"return host.HostAdd(1, 1.5)", "host.HostAdd: argument 2 must be an integer (i64), got number"},
        {"return host.HostAdd(1, 2^63)", "argument 2 must be an integer (i64)"},
        {"return host.HostAdd(1)", "host.HostAdd: expected 2 arguments, got 1"},
        {"return host.HostAdd(1, 2, 3)", "expected 2 arguments, got 3"},
        {"return host.HostAdd32(2^31, 0)", "host.HostAdd32: argument 1 out of range for i32"},
        {"return host.HostAdd32(0, -2^31 - 1)", "argument 2 out of range for i32"},
        {"return host.HostNot(1)", "host.HostNot: argument 1 must be a boolean (bool), got number"},
        {"return host.HostNot(nil)", "must be a boolean (bool), got nil"},
        {"return host.HostUpper(42)", "host.HostUpper: argument 1 must be a string (string), got number"},
        {"return host.HostHalf('1')", "host.HostHalf: argument 1 must be a number (f64), got string"},
        {"return host.HostU64(-1)", "host.HostU64: argument 1 out of range for u64"},
        {"return host.HostU64(2^64)", "argument 1 must be an integer (u64)"},
        {"return host.Nope()", "host.Nope: the host has no function of that name"},
        {"return host['Host\\0Upper']('x')", "host: invalid host function name"},
        {"return host.HostFail('why')", "host.HostFail: host says no: why"},
        {"return host.HostUpper(string.rep('a', 70000))", "host.HostUpper: the arguments do not fit the output buffer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = eval(sb, bad[i].code);
        if (rc != SL_EABORT || !has(got, bad[i].needle) || !has(got, "stack traceback:")) {
            printf("  '%s': rc %d, '%s', want '%s'\n", bad[i].code, rc, got, bad[i].needle);
            t_failed_now = 1;
        }
        CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    }
    EXPECT(eval(sb, "return host[1], type(host.Anything)"), "nil\tfunction");

    /* A sandbox started from the snapshot with other host functions: the
     * Lua state is the same, the signatures are the new ones. */
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
    char err[256];
    sl_sandbox *sb2;
    REQUIRE(sl_sandbox_new_from_snapshot(&sb2, snap, err, sizeof err) == 0);
    hostctx h2 = {.void_calls = 0};
    static const int ss[] = {SL_TYPE_STRING, SL_TYPE_STRING};
    REQUIRE(sl_sandbox_register(sb2, "HostAdd", SL_TYPE_STRING, ss, 2, h_concat, &h2) == 0);
    EXPECT(eval(sb2, "return host.HostAdd('con', 'cat')"), "concat");
    EXPECT_FAIL(eval(sb2, "return host.HostAdd(1, 2)"), SL_EABORT, "argument 1 must be a string (string)");
    EXPECT_FAIL(eval(sb2, "return host.HostUpper('x')"), SL_EABORT, "host.HostUpper: the host has no function");
    EXPECT_FAIL(callj(sb2, "shout", "[\"x\"]"), SL_EABORT, "host.HostUpper: the host has no function");
    /* ... and the first sandbox still has its own. */
    EXPECT(eval(sb, "return host.HostAdd(20, 22)"), "42");
    sl_sandbox_free(sb2);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
}

/* Eval's result: printed lines, then the return values. */
static void eval_output(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    EXPECT(eval(sb, "1 + 1"), "2");
    EXPECT(eval(sb, "x = 1"), "");
    EXPECT(eval(sb, "x"), "1");
    EXPECT(eval(sb, "print('a', 1, nil, true) print() return 2, nil, 'z'"), "a\t1\tnil\ttrue\n\n2\tnil\tz");
    EXPECT(eval(sb, "print(setmetatable({}, {__tostring = function() return 'T' end}))"), "T\n");
    EXPECT(eval(sb, "return string.format('%5.2f|%d', math.pi, 42)"), " 3.14|42");
    EXPECT(eval(sb, "return 'a\\0b'"), "a");
    CHECK(got_len == 3 && memcmp(got, "a\0b", 3) == 0);
    /* Prints made by a failed request are dropped with it. */
    EXPECT_FAIL(eval(sb, "print('lost') error('e')"), SL_EABORT, "Eval:1: e");
    CHECK(!has(got, "lost"));
    EXPECT(eval(sb, "return 7"), "7");
    /* A result larger than the output buffer fails the call, nothing else. */
    EXPECT_FAIL(eval(sb, "return string.rep('x', 100000)"), SL_ENOSCRATCH, "does not fit in the output buffer");
    CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    EXPECT(eval(sb, "return #string.rep('x', 60000)"), "60000");
    sl_sandbox_free(sb);
}

/* What the guest reads on fd 0 (io.read, loadfile(), dofile()). */
typedef struct feed {
    const char *p;
    size_t len, at;
} feed;

static long feed_read(void *user, void *buf, size_t cap)
{
    feed *f = user;
    size_t n = f->len - f->at < cap ? f->len - f->at : cap;
    memcpy(buf, f->p + f->at, n);
    f->at += n;
    return (long)n;
}

/* No way to run a binary chunk: crafted bytecode reads and writes memory at
 * will (a LOADK with an index past the constants faults the guest). Not
 * through load, loadfile or dofile, nor through what they used to hold or
 * call: the base library's load behind a wrapper (debug.getupvalue(load, 1),
 * or debug.getinfo(2, "f") from a reader function running inside it), or
 * loadfile and dofile reading bytecode from stdin. load, loadfile and dofile
 * still work on text. */
static void bytecode(const char *guest)
{
    hostctx h = {.void_calls = 0};
    sl_sandbox *sb = open_plugin(guest, &h);
    REQUIRE(sb);
    sl_snapshot *snap;
    REQUIRE(sl_sandbox_snapshot(sb, &snap) == 0);
#define DUMP "local d = string.dump(function() return 'bytecode ran' end) "
    static const char *const tries[] = {
        DUMP "local _, f = debug.getupvalue(load, 1) "
             "if type(f) ~= 'function' then return 'refused: no upvalue' end "
             "local g, e = f(d) return g and g() or 'refused: ' .. e",
        DUMP "local f load(function() f = f or debug.getinfo(2, 'f').func return nil end) "
             "local g, e = f(d) return g and g() or 'refused: ' .. e",
        DUMP "local g, e = load(d, 'x', 'b') return g and g() or 'refused: ' .. e",
        DUMP "local g, e = load(function() local s = d d = nil return s end) return g and g() or 'refused: ' .. e",
        "local g, e = loadfile(nil, 'b') return g and g() or 'refused: ' .. e",
        "local ok, e = pcall(dofile) return ok and e or 'refused: ' .. e",
        "local g, e = loadfile() return g and g() or 'refused: ' .. e",
    };
    /* loadfile() and dofile() read stdin: give them bytecode. */
    REQUIRE(eval(sb, "return string.dump(function() return 'bytecode ran' end)") == 0);
    char *dump = malloc(got_len);
    REQUIRE(dump);
    memcpy(dump, got, got_len);
    CHECK(got_len > 4 && memcmp(dump, "\x1bLua", 4) == 0);
    feed in = {dump, got_len, 0};
    sl_sandbox_set_stdio(sb, feed_read, NULL, &in);
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        REQUIRE(sl_sandbox_restore(sb, snap) == 0);
        in.at = 0;
        int rc = eval(sb, tries[i]);
        if (rc != 0 || strncmp(got, "refused: ", 9) != 0 || has(got, "bytecode ran")) {
            printf("  try %zu: rc %d, '%.300s'\n", i, rc, got);
            t_failed_now = 1;
        }
        CHECK_EQ(sl_sandbox_status(sb), SL_STATUS_READY);
    }
    /* Text still loads, with a chunk name, an environment, a reader. */
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    EXPECT(eval(sb, "return load('return 1 + 1')(), load('return x', 'c', 'b', {x = 7})()"), "2\t7");
    EXPECT(eval(sb, "local ok, e = pcall(load('error(\"e\")', '=name')) return e"), "name:1: e");
    EXPECT(eval(sb, "local parts = {'return ', 'a', ' .. ', '\"b\"'} local i = 0 "
                    "return load(function() i = i + 1 return parts[i] end, '=r', 't', {a = 'A'})()"),
           "Ab");
    EXPECT(eval(sb, "return (select(2, load(function() return {} end)):match('^[^\\n]*'))"),
           "Eval:1: reader function must return a string");
    EXPECT(eval(sb, "return select(2, load('x ='))"), "[string \"x =\"]:1: unexpected symbol near <eof>");
    EXPECT(eval(sb, "return load(42), select(2, pcall(load, 'return 1', 'n', {}))"), "nil\tbad argument #3 to "
                                                                                      "'load' (string expected, got "
                                                                                      "table)");
    static const char text[] = "local a = ... return 'text ran', a, x";
    /* (A restore before each: stdin's end-of-file indicator sticks.) */
    in = (feed){text, sizeof text - 1, 0};
    EXPECT(eval(sb, "x = 5 return loadfile(nil, 't', {x = 6})()"), "text ran\tnil\t6");
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    in.at = 0;
    EXPECT(eval(sb, "x = 5 return dofile()"), "text ran\tnil\t5");
    REQUIRE(sl_sandbox_restore(sb, snap) == 0);
    in = (feed){"x = = 1", 7, 0};
    EXPECT_FAIL(eval(sb, "return dofile()"), SL_EABORT, "stdin:1: unexpected symbol");
    sl_sandbox_set_stdio(sb, NULL, NULL, NULL);
    free(dump);
    sl_snapshot_free(snap);
    sl_sandbox_free(sb);
#undef DUMP
}

static void test_lua_plugin_requests(void) { requests("lua_plugin"); }
static void test_lua_plugin_corruption(void) { corruption("lua_plugin"); }
static void test_lua_plugin_errors(void) { errors("lua_plugin"); }
static void test_lua_plugin_limits(void) { limits("lua_plugin"); }
static void test_lua_plugin_json(void) { json("lua_plugin"); }
static void test_lua_plugin_host(void) { host("lua_plugin"); }
static void test_lua_plugin_eval_output(void) { eval_output("lua_plugin"); }
static void test_lua_plugin_bytecode(void) { bytecode("lua_plugin"); }
static void test_lua_plugin32_requests(void) { requests("lua_plugin32"); }
static void test_lua_plugin32_corruption(void) { corruption("lua_plugin32"); }
static void test_lua_plugin32_errors(void) { errors("lua_plugin32"); }
static void test_lua_plugin32_limits(void) { limits("lua_plugin32"); }
static void test_lua_plugin32_json(void) { json("lua_plugin32"); }
static void test_lua_plugin32_host(void) { host("lua_plugin32"); }
static void test_lua_plugin32_eval_output(void) { eval_output("lua_plugin32"); }
static void test_lua_plugin32_bytecode(void) { bytecode("lua_plugin32"); }

int main(void)
{
    RUN_ARCH(T_AMD64, test_lua_plugin_requests);
    RUN_ARCH(T_AMD64, test_lua_plugin_corruption);
    RUN_ARCH(T_AMD64, test_lua_plugin_errors);
    RUN_ARCH(T_AMD64, test_lua_plugin_limits);
    RUN_ARCH(T_AMD64, test_lua_plugin_json);
    RUN_ARCH(T_AMD64, test_lua_plugin_host);
    RUN_ARCH(T_AMD64, test_lua_plugin_eval_output);
    RUN_ARCH(T_AMD64, test_lua_plugin_bytecode);
    RUN_ARCH(T_I686, test_lua_plugin32_requests);
    RUN_ARCH(T_I686, test_lua_plugin32_corruption);
    RUN_ARCH(T_I686, test_lua_plugin32_errors);
    RUN_ARCH(T_I686, test_lua_plugin32_limits);
    RUN_ARCH(T_I686, test_lua_plugin32_json);
    RUN_ARCH(T_I686, test_lua_plugin32_host);
    RUN_ARCH(T_I686, test_lua_plugin32_eval_output);
    RUN_ARCH(T_I686, test_lua_plugin32_bytecode);
    free(got);
    T_EXIT();
}

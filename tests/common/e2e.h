/* Helpers shared by the end-to-end tests (tests/vcpu/test_e2e_*.c). */
#ifndef SL_TEST_E2E_H
#define SL_TEST_E2E_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sandlet.h"
#include "t.h"

/* Path of a built guest: $SANDLET_GUESTS/name, default build/guests/name. */
static inline const char *guest_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("SANDLET_GUESTS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "build/guests", name);
    return buf;
}

/* The demo guest's Counter(): the counter's new value, or -1 with the
 * sandbox's error printed. */
static inline long long demo_counter(sl_sandbox *sb)
{
    sl_value r;
    if (sl_sandbox_call(sb, "Counter", NULL, 0, &r)) {
        printf("  Counter: %s\n", sl_sandbox_errmsg(sb));
        return -1;
    }
    return r.v.i64;
}

/* fn(arg) for a function of one u64 returning one: 0 with *out, or the
 * call's error with the sandbox's message printed. */
static inline int call_u64(sl_sandbox *sb, const char *fn, uint64_t arg, uint64_t *out)
{
    sl_value a = {.type = SL_TYPE_U64, .v.u64 = arg}, r;
    int rc = sl_sandbox_call(sb, fn, &a, 1, &r);
    if (rc)
        printf("  %s: %s\n", fn, sl_sandbox_errmsg(sb));
    *out = r.v.u64;
    return rc;
}

/* Whether two snapshots have one identity. */
static inline int same_id(const sl_snapshot *a, const sl_snapshot *b)
{
    uint8_t x[32], y[32];
    sl_snapshot_id(a, x);
    sl_snapshot_id(b, y);
    return memcmp(x, y, sizeof x) == 0;
}

/* Case-insensitive substring test, for checking error messages. */
static inline int has(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

/* Calls fn(arg) on a function that takes one string: its string result, or
 * the sandbox's error message, into out[0..cap) (truncated, NUL-terminated).
 * Returns sl_sandbox_call's code. */
static inline int call_text(sl_sandbox *sb, const char *fn, const char *arg, char *out, size_t cap)
{
    sl_value a = {.type = SL_TYPE_STRING, .v.buf = {arg, strlen(arg)}}, r;
    int rc = sl_sandbox_call(sb, fn, &a, 1, &r);
    const char *text = rc ? sl_sandbox_errmsg(sb) : (const char *)r.v.buf.ptr;
    snprintf(out, cap, "%.*s", rc ? (int)strlen(text) : (int)r.v.buf.len, text);
    return rc;
}

/* Checks that fn(arg) returns the string `want`: otherwise prints the call
 * and what came back and fails the current test. Returns 0 or -1. */
static inline int expect_text(sl_sandbox *sb, const char *fn, const char *arg, const char *want)
{
    char got[4096];
    int rc = call_text(sb, fn, arg, got, sizeof got);
    if (rc || strcmp(got, want) != 0) {
        printf("  %s(%s) = %s (rc %d), want %s\n", fn, arg, got, rc, want);
        t_failed_now = 1;
        return -1;
    }
    return 0;
}

/* The host side of HostUpper: `arg` (a string) upper-cased into buf (room
 * for its length + 1), returned in *ret. */
static inline void upper_string(sl_value *ret, char *buf, const sl_value *arg)
{
    const char *s = arg->v.buf.ptr;
    size_t n = arg->v.buf.len;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)toupper((unsigned char)s[i]);
    buf[n] = 0;
    ret->type = SL_TYPE_STRING;
    ret->v.buf.ptr = buf;
    ret->v.buf.len = n;
}
#endif

/* JSON output (--json; docs/cli.md, "JSON output"). A small writer of our
 * own rather than jansson: the CLI only writes JSON, and what it writes comes
 * partly from the guest (strings that need not be UTF-8, NUL bytes included),
 * which jansson refuses while we must report it exactly. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void put(jw *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->cap - w->len < n + 1) {
        size_t ncap = w->cap ? w->cap : 256;
        while (ncap - w->len < n + 1) {
            if (ncap > SIZE_MAX / 2) {
                w->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *np = realloc(w->p, ncap);
        if (!np) {
            w->oom = 1;
            return;
        }
        w->p = np;
        w->cap = ncap;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
    w->p[w->len] = 0;
}

static void puts_(jw *w, const char *s) { put(w, s, strlen(s)); }

static void putf(jw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(jw *w, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(w, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

int json_string_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* A JSON string: quotes, backslashes and control characters (and DEL, for
 * terminals) escaped; a byte that is not part of well-formed UTF-8 becomes
 * U+FFFD. */
static void str(jw *w, const void *s, size_t n)
{
    const unsigned char *p = s;
    put(w, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one put */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = utf8_len(p + i, n - i);
        if (k && c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
            i += k;
            run += k;
            continue;
        }
        put(w, p + i - run, run);
        run = 0;
        if (!k)
            puts_(w, "\\ufffd");
        else if (c == '"')
            puts_(w, "\\\"");
        else if (c == '\\')
            puts_(w, "\\\\");
        else if (c == '\n')
            puts_(w, "\\n");
        else if (c == '\t')
            puts_(w, "\\t");
        else if (c == '\r')
            puts_(w, "\\r");
        else
            putf(w, "\\u%04x", c);
        i++;
    }
    put(w, p + n - run, run);
    put(w, "\"", 1);
}

static void key(jw *w, const char *k)
{
    if (w->comma)
        put(w, ",", 1);
    w->comma = 1;
    if (k) {
        str(w, k, strlen(k));
        put(w, ":", 1);
    }
}

void jw_open(jw *w, const char *k, char bracket)
{
    key(w, k);
    put(w, &bracket, 1);
    w->comma = 0;
}

void jw_close(jw *w, char bracket)
{
    put(w, &bracket, 1);
    w->comma = 1;
}

void jw_str(jw *w, const char *k, const char *s)
{
    key(w, k);
    if (s)
        str(w, s, strlen(s));
    else
        puts_(w, "null");
}

void jw_strn(jw *w, const char *k, const void *s, size_t n)
{
    key(w, k);
    str(w, s, n);
}

void jw_hex(jw *w, const char *k, const void *s, size_t n)
{
    key(w, k);
    put(w, "\"", 1);
    const unsigned char *b = s;
    for (size_t i = 0; i < n; i++) {
        char h[2] = {"0123456789abcdef"[b[i] >> 4], "0123456789abcdef"[b[i] & 15]};
        put(w, h, 2);
    }
    put(w, "\"", 1);
}

void jw_u64(jw *w, const char *k, uint64_t v)
{
    key(w, k);
    putf(w, "%" PRIu64, v);
}

void jw_i64(jw *w, const char *k, int64_t v)
{
    key(w, k);
    putf(w, "%" PRId64, v);
}

void jw_bool(jw *w, const char *k, int v)
{
    key(w, k);
    puts_(w, v ? "true" : "false");
}

void jw_null(jw *w, const char *k)
{
    key(w, k);
    puts_(w, "null");
}

/* The shortest %g form that reads back as the same value (strtod for f64,
 * strtof for f32); non-finite values as the strings "NaN", "Infinity",
 * "-Infinity" (JSON has no numbers for them). */
static void number(jw *w, double d, int is_f32)
{
    if (isnan(d)) {
        puts_(w, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        puts_(w, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    /* The shortest text of any precision: "100", not "1e+02"; "5e-324", not
     * the 15 digits of a subnormal. 17 (f32: 9) digits always read back. */
    char buf[64], best[64] = "";
    for (int prec = 1; prec <= (is_f32 ? 9 : 17); prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if ((is_f32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d) &&
            (!best[0] || strlen(buf) < strlen(best)))
            memcpy(best, buf, sizeof best);
    }
    puts_(w, best);
}

void jw_value(jw *w, const sl_value *v)
{
    jw_str(w, "type", sl_type_name(v->type));
    switch (v->type) {
    case SL_TYPE_VOID: jw_null(w, "value"); break;
    case SL_TYPE_I32: jw_i64(w, "value", v->v.i32); break;
    case SL_TYPE_U32: jw_u64(w, "value", v->v.u32); break;
    /* 64-bit integers as decimal strings: readers that hold numbers as
     * doubles (JavaScript, jq 1.6) would round them above 2^53. */
    case SL_TYPE_I64: {
        char b[32];
        snprintf(b, sizeof b, "%" PRId64, v->v.i64);
        jw_str(w, "value", b);
        break;
    }
    case SL_TYPE_U64: {
        char b[32];
        snprintf(b, sizeof b, "%" PRIu64, v->v.u64);
        jw_str(w, "value", b);
        break;
    }
    case SL_TYPE_F32: key(w, "value"); number(w, v->v.f32, 1); break;
    case SL_TYPE_F64: key(w, "value"); number(w, v->v.f64, 0); break;
    case SL_TYPE_BOOL: jw_bool(w, "value", v->v.b); break;
    case SL_TYPE_STRING:
        jw_strn(w, "value", v->v.buf.ptr, v->v.buf.len);
        /* Not UTF-8: "value" has U+FFFD for the bad bytes; "hex" has them all. */
        if (!json_string_valid(v->v.buf.ptr, v->v.buf.len))
            jw_hex(w, "hex", v->v.buf.ptr, v->v.buf.len);
        break;
    case SL_TYPE_BYTES: jw_hex(w, "value", v->v.buf.ptr, v->v.buf.len); break;
    default: jw_null(w, "value"); break;
    }
}

void jw_emit(jw *w, int fd)
{
    if (w->oom) {
        /* Still one well-formed line, so a reader sees the failure. */
        out_printf(fd, "{\"ok\":false,\"error\":\"out of memory writing JSON\",\"code\":%d}\n", SL_ENOMEM);
    } else {
        put(w, "\n", 1);
        if (!w->oom)
            out_write(fd, w->p, w->len);
    }
    free(w->p);
    memset(w, 0, sizeof *w);
}

/* "error", "code" and "exit" of a failure object, which they close and print. */
static void error_tail(jw *w, const char *msg, int code, int exit_code)
{
    jw_str(w, "error", msg && *msg ? msg : "failed");
    if (code)
        jw_i64(w, "code", code);
    else
        jw_null(w, "code");
    if (exit_code >= 0)
        jw_i64(w, "exit", exit_code);
    jw_close(w, '}');
    jw_emit(w, 1);
}

void json_error(const char *command, const char *function, const char *msg, int code, int exit_code)
{
    jw w = {0};
    jw_open(&w, NULL, '{');
    jw_bool(&w, "ok", 0);
    if (command)
        jw_str(&w, "command", command);
    if (function)
        jw_str(&w, "function", function);
    error_tail(&w, msg, code, exit_code);
}

void json_error_files(const char *k1, const char *f1, const char *k2, const char *f2, const char *msg, int code,
                      int exit_code)
{
    jw w = {0};
    jw_open(&w, NULL, '{');
    jw_bool(&w, "ok", 0);
    jw_str(&w, k1, f1);
    if (k2)
        jw_str(&w, k2, f2);
    error_tail(&w, msg, code, exit_code);
}

int json_wanted(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    return 0;
}

/* One request of the request server: a JSON line in, a JSON answer line out
 * (formats: docs/serve.md). Everything in the line is hostile: its JSON is
 * parsed by jansson (duplicate keys refused), every argument is checked
 * against the type the guest registered for it, and the guest's own bytes
 * (result strings, error messages) are escaped, never trusted to be UTF-8.
 *
 * Answers are assembled by hand around jansson's encoding of each JSON
 * value, because jansson's integers are signed 64-bit and a u64 result must
 * come out exact. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

/* ------------------------------------------------------------ answer text */

typedef struct abuf {
    char *p;
    size_t len, cap;
    int failed; /* out of memory: the answer is lost */
} abuf;

/* Room for n more bytes (and a NUL); NULL when out of memory. */
static char *ab_room(abuf *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (n >= b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n >= cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return NULL;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void ab_put(abuf *b, const char *s, size_t n)
{
    char *d = ab_room(b, n);
    if (d) {
        memcpy(d, s, n);
        b->len += n;
    }
}

static void ab_str(abuf *b, const char *s)
{
    ab_put(b, s, strlen(s));
}

static void ab_printf(abuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ab_printf(abuf *b, const char *fmt, ...)
{
    char tmp[128]; /* numbers only */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        ab_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static int ab_dump_cb(const char *buf, size_t size, void *data)
{
    abuf *b = data;
    ab_put(b, buf, size);
    return b->failed ? -1 : 0;
}

/* Appends a JSON value as jansson encodes it (compact, one line); takes the
 * reference (NULL: jansson ran out of memory). */
static void ab_json(abuf *b, json_t *j)
{
    if (!j || json_dump_callback(j, ab_dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        b->failed = 1;
    json_decref(j);
}

static void ab_hex(abuf *b, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (n > SIZE_MAX / 2 - 1)
        b->failed = 1;
    char *d = ab_room(b, 2 * n + 2);
    if (!d)
        return;
    const unsigned char *s = p;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        *d++ = digits[s[i] >> 4];
        *d++ = digits[s[i] & 15];
    }
    *d = '"';
    b->len += 2 * n + 2;
}

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

static int utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq(s + i, n - i)) == 0)
            return 0;
    return 1;
}

/* Appends a message as a JSON string; bytes that are not UTF-8 (a guest's
 * abort text may hold anything) become '?'. */
static void ab_message(abuf *b, const char *msg)
{
    size_t n = strlen(msg);
    char *clean = malloc(n + 1);
    if (!clean) {
        b->failed = 1;
        return;
    }
    const unsigned char *s = (const unsigned char *)msg;
    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_seq(s + i, n - i);
        if (k == 0) {
            clean[i] = '?';
            k = 1;
        } else {
            memcpy(clean + i, s + i, k);
        }
    }
    ab_json(b, json_stringn(clean, n));
    free(clean);
}

/* ---------------------------------------------------------------- answers */

/* The id: the request's own (any JSON value), else its line number. */
static void ab_id(abuf *b, const json_t *id, uint64_t lineno)
{
    ab_str(b, "{\"id\":");
    if (id)
        ab_json(b, json_incref((json_t *)id));
    else
        ab_printf(b, "%" PRIu64, lineno);
}

static void error_answer(abuf *b, const json_t *id, uint64_t lineno, int code, const char *msg)
{
    ab_id(b, id, lineno);
    ab_str(b, ",\"ok\":false,\"error\":");
    ab_message(b, msg);
    ab_printf(b, ",\"code\":%d}\n", code);
}

/* The shortest "%.*g" that reads back as the same value (at most 17 digits
 * for a double, 9 for a float); non-finite values as the strings "nan",
 * "inf" and "-inf", which JSON has no numbers for. */
static void ab_real(abuf *b, double v, int is_f32)
{
    if (isnan(v)) {
        ab_str(b, "\"nan\"");
        return;
    }
    if (isinf(v)) {
        ab_str(b, v > 0 ? "\"inf\"" : "\"-inf\"");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        double back = strtod(tmp, NULL);
        if (is_f32 ? (float)back == (float)v : back == v)
            break;
    }
    ab_str(b, tmp);
}

/* "value" of a successful call; *hex_string tells that a string result was
 * not UTF-8 and went out as hex. */
static void ab_value(abuf *b, const sl_value *v, int *hex_string)
{
    switch (v->type) {
    case SL_TYPE_VOID:
        ab_str(b, "null");
        break;
    case SL_TYPE_I32:
        ab_printf(b, "%" PRId32, v->v.i32);
        break;
    case SL_TYPE_U32:
        ab_printf(b, "%" PRIu32, v->v.u32);
        break;
    case SL_TYPE_I64:
        ab_printf(b, "%" PRId64, v->v.i64);
        break;
    case SL_TYPE_U64:
        ab_printf(b, "%" PRIu64, v->v.u64);
        break;
    case SL_TYPE_F32:
        ab_real(b, v->v.f32, 1);
        break;
    case SL_TYPE_F64:
        ab_real(b, v->v.f64, 0);
        break;
    case SL_TYPE_BOOL:
        ab_str(b, v->v.b ? "true" : "false");
        break;
    case SL_TYPE_STRING:
        if (utf8_valid(v->v.buf.ptr, v->v.buf.len)) {
            ab_json(b, json_stringn(v->v.buf.ptr, v->v.buf.len));
        } else {
            ab_hex(b, v->v.buf.ptr, v->v.buf.len);
            *hex_string = 1;
        }
        break;
    case SL_TYPE_BYTES:
        ab_hex(b, v->v.buf.ptr, v->v.buf.len);
        break;
    default: /* the library checked the type against the signature */
        ab_str(b, "null");
        break;
    }
}

static void ok_answer(abuf *b, const json_t *id, uint64_t lineno, const sl_value *v)
{
    int hex_string = 0;
    ab_id(b, id, lineno);
    ab_str(b, ",\"ok\":true,\"type\":\"");
    ab_str(b, sl_type_name(v->type));
    ab_str(b, "\",\"value\":");
    ab_value(b, v, &hex_string);
    ab_str(b, hex_string ? ",\"encoding\":\"hex\"}\n" : "}\n");
}

/* --------------------------------------------------------------- requests */

typedef struct request {
    json_t *root;     /* NULL when the line is not a JSON object */
    const json_t *id; /* NULL when absent */
    const char *fn;
    const json_t *args; /* an array, NULL when absent (no arguments) */
} request;

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Fills r from the line; 0, or an SL_E* code with the reason in why. The id
 * is taken first, so that every later error can echo it. */
static int parse_request(const serve_job *j, request *r, char *why, size_t whylen)
{
    memset(r, 0, sizeof *r);
    if (j->too_long) {
        snprintf(why, whylen, "request line longer than %u bytes", SERVE_MAX_LINE);
        return SL_ERANGE;
    }
    json_error_t jerr;
    r->root = json_loadb(j->line, j->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!r->root) {
        snprintf(why, whylen, "malformed JSON at column %d: %s", jerr.column, jerr.text);
        return SL_EINVAL;
    }
    if (!json_is_object(r->root)) {
        snprintf(why, whylen, "a request is a JSON object, not %s", json_kind(r->root));
        return SL_EINVAL;
    }
    r->id = json_object_get(r->root, "id");
    const char *key;
    json_t *val;
    json_object_foreach(r->root, key, val) {
        if (strcmp(key, "id") == 0)
            continue;
        if (strcmp(key, "fn") == 0) {
            if (!json_is_string(val) || strlen(json_string_value(val)) != json_string_length(val)) {
                snprintf(why, whylen, "\"fn\" must be a function name (a string without NUL)");
                return SL_EINVAL;
            }
            r->fn = json_string_value(val);
        } else if (strcmp(key, "args") == 0) {
            if (!json_is_array(val)) {
                snprintf(why, whylen, "\"args\" must be an array, not %s", json_kind(val));
                return SL_EINVAL;
            }
            r->args = val;
        } else {
            snprintf(why, whylen, "unknown key \"%.64s\" (a request has \"id\", \"fn\", \"args\")", key);
            return SL_EINVAL;
        }
    }
    if (!r->fn) {
        snprintf(why, whylen, "no \"fn\": the name of the function to call");
        return SL_EINVAL;
    }
    return 0;
}

/* i64 and u64 also come as decimal strings: jansson reads no integer above
 * 2^63 - 1. 0; -1 when s is not a decimal number (digits after an optional
 * '-'); -2 when it is one outside the type's range (any length: leading
 * zeros are fine, strto*ll report overflow; strtoull would negate a '-'). */
static int parse_decimal(const char *s, size_t len, int is_signed, int64_t *i, uint64_t *u)
{
    size_t neg = len && s[0] == '-', nonzero = 0;
    if (len == neg || strlen(s) != len)
        return -1;
    for (size_t k = neg; k < len; k++) {
        if (s[k] < '0' || s[k] > '9')
            return -1;
        nonzero |= s[k] != '0';
    }
    if (neg && !is_signed) {
        *u = 0;
        return nonzero ? -2 : 0;
    }
    char *end;
    errno = 0;
    if (is_signed)
        *i = strtoll(s, &end, 10);
    else
        *u = strtoull(s, &end, 10);
    return errno == ERANGE ? -2 : errno || *end ? -1 : 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* bytes: hex, two digits per byte, an optional "0x"; *buf is malloc'd. */
static int parse_hex(const char *s, size_t len, void **buf, size_t *n)
{
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        len -= 2;
    }
    if (len % 2)
        return -1;
    unsigned char *d = malloc(len / 2 + 1);
    if (!d)
        return -1;
    for (size_t k = 0; k < len / 2; k++) {
        int hi = hexval(s[2 * k]), lo = hexval(s[2 * k + 1]);
        if (hi < 0 || lo < 0) {
            free(d);
            return -1;
        }
        d[k] = (unsigned char)(hi << 4 | lo);
    }
    *buf = d;
    *n = len / 2;
    return 0;
}

/* A real argument: a JSON number, or "nan", "inf", "-inf". */
static int parse_real(const json_t *a, double *d)
{
    if (json_is_number(a)) {
        *d = json_number_value(a);
        return 0;
    }
    const char *s = json_is_string(a) ? json_string_value(a) : "";
    if (strcmp(s, "nan") == 0)
        *d = NAN;
    else if (strcmp(s, "inf") == 0)
        *d = INFINITY;
    else if (strcmp(s, "-inf") == 0)
        *d = -INFINITY;
    else
        return -1;
    return 0;
}

/* Converts one JSON argument to the type the guest declared; 0, or an SL_E*
 * code with the reason in why. A bytes argument's buffer is malloc'd (the
 * caller frees it). */
static int convert_arg(const json_t *a, int type, sl_value *v, char *why, size_t whylen)
{
    static const char *const want[] = {
        [SL_TYPE_I32] = "an integer in [-2147483648, 2147483647]",
        [SL_TYPE_U32] = "an integer in [0, 4294967295]",
        [SL_TYPE_I64] = "an integer (or a decimal string) in [-2^63, 2^63-1]",
        [SL_TYPE_U64] = "an integer (or a decimal string) in [0, 2^64-1]",
        [SL_TYPE_F32] = "a number within the range of a float, or \"nan\", \"inf\", \"-inf\"",
        [SL_TYPE_F64] = "a number, or \"nan\", \"inf\", \"-inf\"",
        [SL_TYPE_BOOL] = "true or false",
        [SL_TYPE_STRING] = "a string",
        [SL_TYPE_BYTES] = "a string of hex digits, two per byte",
    };
    memset(v, 0, sizeof *v);
    v->type = type;
    json_int_t n = json_is_integer(a) ? json_integer_value(a) : 0;
    const char *s = json_is_string(a) ? json_string_value(a) : NULL;
    size_t slen = s ? json_string_length(a) : 0;
    int out_of_range = 0; /* the right kind of JSON value, but not a value of the type */
    int dec = -1;         /* parse_decimal's verdict on a string */
    double d;
    switch (type) {
    case SL_TYPE_I32:
        if (json_is_integer(a) && n >= INT32_MIN && n <= INT32_MAX) {
            v->v.i32 = (int32_t)n;
            return 0;
        }
        out_of_range = json_is_integer(a);
        break;
    case SL_TYPE_U32:
        if (json_is_integer(a) && n >= 0 && n <= (json_int_t)UINT32_MAX) {
            v->v.u32 = (uint32_t)n;
            return 0;
        }
        out_of_range = json_is_integer(a);
        break;
    case SL_TYPE_I64:
        if (json_is_integer(a)) {
            v->v.i64 = (int64_t)n;
            return 0;
        }
        if (s && (dec = parse_decimal(s, slen, 1, &v->v.i64, NULL)) == 0)
            return 0;
        out_of_range = dec == -2;
        break;
    case SL_TYPE_U64:
        if (json_is_integer(a) && n >= 0) {
            v->v.u64 = (uint64_t)n;
            return 0;
        }
        if (s && (dec = parse_decimal(s, slen, 0, NULL, &v->v.u64)) == 0)
            return 0;
        out_of_range = json_is_integer(a) || dec == -2;
        break;
    case SL_TYPE_F32:
        if (parse_real(a, &d) == 0 && !(isfinite(d) && fabs(d) > FLT_MAX)) {
            v->v.f32 = (float)d;
            return 0;
        }
        out_of_range = json_is_number(a);
        break;
    case SL_TYPE_F64:
        if (parse_real(a, &d) == 0) {
            v->v.f64 = d;
            return 0;
        }
        break;
    case SL_TYPE_BOOL:
        if (json_is_boolean(a)) {
            v->v.b = json_is_true(a);
            return 0;
        }
        break;
    case SL_TYPE_STRING:
        if (s) {
            v->v.buf.ptr = s; /* exactly the decoded bytes, NULs included */
            v->v.buf.len = slen;
            return 0;
        }
        break;
    case SL_TYPE_BYTES: {
        void *buf;
        size_t len;
        if (s && parse_hex(s, slen, &buf, &len) == 0) {
            v->v.buf.ptr = buf;
            v->v.buf.len = len;
            return 0;
        }
        break;
    }
    default:
        snprintf(why, whylen, "parameter type %d is not supported", type);
        return SL_EUNSUPPORTED;
    }
    if (out_of_range) {
        snprintf(why, whylen, "out of range: expected %s", want[type]);
        return SL_ERANGE;
    }
    snprintf(why, whylen, "expected %s, got %s", want[type], json_kind(a));
    return SL_ETYPE;
}

/* A function's parameter list for messages: "i32, i32". */
static void param_list(char *out, size_t cap, const int *params, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t k = 0; k < n && used < cap; k++) {
        int w = snprintf(out + used, cap - used, "%s%s", k ? ", " : "", sl_type_name(params[k]));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void free_args(sl_value *args, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (args[k].type == SL_TYPE_BYTES)
            free((void *)args[k].v.buf.ptr);
    free(args);
}

/* Looks the function up, converts the arguments and calls it; on success
 * fills *ret (pointing into sb). 0, or an SL_E* code with the reason. */
static int call_function(sl_sandbox *sb, const request *r, sl_value *ret, int *called, char *why, size_t whylen)
{
    int idx = sl_sandbox_find_function(sb, r->fn);
    if (idx < 0) {
        snprintf(why, whylen, "no function \"%.100s\" in this guest", r->fn);
        return SL_ENOTFOUND;
    }
    const char *name;
    int ret_type;
    const int *params;
    size_t nparams;
    int rc = sl_sandbox_function(sb, (size_t)idx, &name, &ret_type, &params, &nparams);
    if (rc) {
        snprintf(why, whylen, "%s", sl_sandbox_errmsg(sb));
        return rc;
    }
    size_t nargs = r->args ? json_array_size(r->args) : 0;
    if (nargs != nparams) {
        char list[256];
        param_list(list, sizeof list, params, nparams);
        snprintf(why, whylen, "%s takes %zu argument%s (%s), got %zu", name, nparams, nparams == 1 ? "" : "s",
                 list, nargs);
        return SL_ETYPE;
    }
    sl_value *args = calloc(nparams ? nparams : 1, sizeof *args);
    if (!args) {
        snprintf(why, whylen, "out of host memory");
        return SL_ENOMEM;
    }
    for (size_t k = 0; k < nparams; k++) {
        char what[200];
        if ((rc = convert_arg(json_array_get(r->args, k), params[k], &args[k], what, sizeof what))) {
            snprintf(why, whylen, "%s: argument %zu (%s): %s", name, k + 1, sl_type_name(params[k]), what);
            free_args(args, k);
            return rc;
        }
    }
    *called = 1;
    rc = sl_sandbox_call(sb, name, args, nparams, ret);
    free_args(args, nparams);
    if (rc)
        snprintf(why, whylen, "%s", sl_sandbox_errmsg(sb));
    return rc;
}

int serve_answer(sl_sandbox *sb, int refuse_code, const char *refuse_msg, const serve_job *j, char **text,
                 size_t *len, int *called)
{
    abuf b = {0};
    request r;
    sl_value ret;
    char why[512];
    *called = 0;
    int rc = parse_request(j, &r, why, sizeof why);
    if (rc == 0 && refuse_code) {
        rc = refuse_code;
        snprintf(why, sizeof why, "%s", refuse_msg);
    }
    if (rc == 0)
        rc = call_function(sb, &r, &ret, called, why, sizeof why);
    if (rc == 0)
        ok_answer(&b, r.id, j->lineno, &ret);
    else
        error_answer(&b, r.id, j->lineno, rc, why);
    json_decref(r.root);
    if (b.failed) {
        free(b.p);
        b.p = NULL;
        b.len = 0;
    }
    *text = b.p;
    *len = b.len;
    return rc == 0;
}

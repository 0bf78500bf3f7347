/* The JSON codec of the Lua plugin (plugin.h describes the mapping): a
 * strict RFC 8259 decoder into Lua values and an encoder back, on the Lua C
 * API alone. JSON text is hostile: every read is checked against its end,
 * recursion stops at LP_JSON_MAX_DEPTH (the guest's call stack is small),
 * and every failure is a Lua error, never a crash. */
#include "json.h"
#include "../json_double.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lualib.h"

#define MT_ARRAY "json.array"   /* marks decoded arrays (json.array) */
#define MT_OBJECT "json.object" /* marks decoded objects (json.object) */
#define MT_BUF "json.buffer"    /* the encoder's output buffer (frees it on collection) */

/* Length (1..4) of the well-formed UTF-8 sequence at p, or 0 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* ---------------------------------------------------------------- decoding */

typedef struct dec {
    lua_State *L;
    const unsigned char *s, *p, *end;
    int depth;
} dec;

static int fail_at(dec *d, const unsigned char *at, const char *what)
{
    return luaL_error(d->L, "JSON: %s at byte %I", what, (lua_Integer)(at - d->s) + 1);
}

static int fail(dec *d, const char *what)
{
    if (d->p >= d->end)
        return luaL_error(d->L, "JSON: %s at the end of the text", what);
    return fail_at(d, d->p, what);
}

static void skip_ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int is_digit(const dec *d, const unsigned char *q)
{
    return q < d->end && *q >= '0' && *q <= '9';
}

static void decode_value(dec *d);

static void enter(dec *d)
{
    if (++d->depth > LP_JSON_MAX_DEPTH)
        luaL_error(d->L, "JSON: nesting deeper than %d at byte %I", LP_JSON_MAX_DEPTH, (lua_Integer)(d->p - d->s) + 1);
    luaL_checkstack(d->L, 4, "JSON nesting");
}

/* luaL_setmetatable, checked: Lua code can replace registry entries
 * (debug.getregistry), and lua_setmetatable takes only a table. */
static void set_mt(lua_State *L, const char *mt)
{
    if (luaL_getmetatable(L, mt) != LUA_TTABLE)
        luaL_error(L, "JSON: the registry's %s was replaced", mt);
    lua_setmetatable(L, -2);
}

/* Four hex digits at q (bounds checked by the caller), or -1. */
static long hex4(const unsigned char *q)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int c = q[i], x;
        if (c >= '0' && c <= '9')
            x = c - '0';
        else if (c >= 'a' && c <= 'f')
            x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            x = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + x;
    }
    return v;
}

static void add_utf8(luaL_Buffer *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, u, n);
}

/* The escape sequence at q (a backslash; bounds checked here), appended to
 * b; returns the position after it. */
static const unsigned char *decode_escape(dec *d, luaL_Buffer *b, const unsigned char *q)
{
    if (d->end - q < 2)
        fail_at(d, q, "unterminated string");
    char c;
    switch (q[1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u': {
        long cp = d->end - q >= 6 ? hex4(q + 2) : -1;
        if (cp < 0)
            fail_at(d, q, "invalid \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            fail_at(d, q, "unpaired surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = d->end - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                fail_at(d, q, "unpaired surrogate in \\u escape");
            add_utf8(b, 0x10000 + (((unsigned long)cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00));
            return q + 12;
        }
        add_utf8(b, (unsigned long)cp);
        return q + 6;
    }
    default: fail_at(d, q, "invalid escape"); return q;
    }
    luaL_addchar(b, c);
    return q + 2;
}

/* d->p is at the opening quote. Strings without escapes are pushed straight
 * from the text; the others go through a buffer. */
static void decode_string(dec *d)
{
    const unsigned char *start = ++d->p, *q = start;
    for (;;) {
        if (q >= d->end)
            fail_at(d, start - 1, "unterminated string");
        unsigned c = *q;
        if (c == '"') {
            lua_pushlstring(d->L, (const char *)start, (size_t)(q - start));
            d->p = q + 1;
            return;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            fail_at(d, q, "control character in string");
        size_t n = c < 0x80 ? 1 : utf8_len(q, d->end);
        if (!n)
            fail_at(d, q, "invalid UTF-8 in string");
        q += n;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, (const char *)start, (size_t)(q - start));
    for (;;) {
        if (q >= d->end)
            fail_at(d, start - 1, "unterminated string");
        unsigned c = *q;
        if (c == '"')
            break;
        if (c == '\\') {
            q = decode_escape(d, &b, q);
            continue;
        }
        if (c < 0x20)
            fail_at(d, q, "control character in string");
        size_t n = c < 0x80 ? 1 : utf8_len(q, d->end);
        if (!n)
            fail_at(d, q, "invalid UTF-8 in string");
        luaL_addlstring(&b, (const char *)q, n);
        q += n;
    }
    luaL_pushresult(&b);
    d->p = q + 1;
}

/* RFC 8259's number grammar is checked here; Lua converts the token, so
 * integers that fit stay integers and the rest become floats exactly as Lua
 * reads them. Not inlined: its token buffer must not sit in every frame of
 * the recursion. */
static __attribute__((noinline)) void decode_number(dec *d)
{
    const unsigned char *start = d->p, *q = d->p;
    if (q < d->end && *q == '-')
        q++;
    if (!is_digit(d, q))
        fail_at(d, start, "invalid number");
    if (*q == '0')
        q++;
    else
        while (is_digit(d, q))
            q++;
    if (q < d->end && *q == '.') {
        if (!is_digit(d, ++q))
            fail_at(d, start, "invalid number");
        while (is_digit(d, q))
            q++;
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < d->end && (*q == '+' || *q == '-'))
            q++;
        if (!is_digit(d, q))
            fail_at(d, start, "invalid number");
        while (is_digit(d, q))
            q++;
    }
    size_t n = (size_t)(q - start);
    if (n > LP_JSON_MAX_NUMBER)
        fail_at(d, start, "number too long");
    char tok[LP_JSON_MAX_NUMBER + 1];
    memcpy(tok, start, n);
    tok[n] = 0;
    if (lua_stringtonumber(d->L, tok) != n + 1)
        fail_at(d, start, "invalid number");
    if (!lua_isinteger(d->L, -1) && isinf(lua_tonumber(d->L, -1)))
        fail_at(d, start, "number out of range");
    d->p = q;
}

static void decode_literal(dec *d, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        fail(d, "unexpected character");
    d->p += n;
}

static void decode_array(dec *d)
{
    enter(d);
    d->p++;
    lua_createtable(d->L, 0, 0);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (lua_Integer i = 1;; i++) {
            decode_value(d);
            lua_rawseti(d->L, -2, i);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
            } else if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            } else {
                fail(d, "expected ',' or ']' in array");
            }
        }
    }
    set_mt(d->L, MT_ARRAY);
    d->depth--;
}

static void decode_object(dec *d)
{
    enter(d);
    d->p++;
    lua_createtable(d->L, 0, 0);
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            skip_ws(d);
            if (d->p >= d->end || *d->p != '"')
                fail(d, "expected a string key in object");
            decode_string(d);
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':')
                fail(d, "expected ':' in object");
            d->p++;
            decode_value(d);
            lua_rawset(d->L, -3);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
            } else if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            } else {
                fail(d, "expected ',' or '}' in object");
            }
        }
    }
    set_mt(d->L, MT_OBJECT);
    d->depth--;
}

static void decode_value(dec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        fail(d, "unexpected end of text");
    switch (*d->p) {
    case '{': decode_object(d); break;
    case '[': decode_array(d); break;
    case '"': decode_string(d); break;
    case 't':
        decode_literal(d, "true");
        lua_pushboolean(d->L, 1);
        break;
    case 'f':
        decode_literal(d, "false");
        lua_pushboolean(d->L, 0);
        break;
    case 'n':
        decode_literal(d, "null");
        lua_pushlightuserdata(d->L, NULL);
        break;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            decode_number(d);
        else
            fail(d, "unexpected character");
    }
}

void lp_json_decode(lua_State *L, const char *s, size_t len)
{
    dec d = {L, (const unsigned char *)s, (const unsigned char *)s, (const unsigned char *)s + len, 0};
    luaL_checkstack(L, 4, "JSON");
    decode_value(&d);
    skip_ws(&d);
    if (d.p != d.end)
        fail(&d, "unexpected text after the value");
}

int lp_json_decode_args(lua_State *L, const char *s, size_t len)
{
    dec d = {L, (const unsigned char *)s, (const unsigned char *)s, (const unsigned char *)s + len, 0};
    skip_ws(&d);
    if (d.p == d.end)
        return 0;
    if (*d.p != '[')
        fail(&d, "the arguments must be an array");
    enter(&d);
    d.p++;
    int n = 0;
    skip_ws(&d);
    if (d.p < d.end && *d.p == ']') {
        d.p++;
    } else {
        for (;;) {
            luaL_checkstack(L, 4, "too many JSON arguments");
            decode_value(&d);
            if (lua_islightuserdata(L, -1) && lua_touserdata(L, -1) == NULL) {
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            n++;
            skip_ws(&d);
            if (d.p < d.end && *d.p == ',') {
                d.p++;
            } else if (d.p < d.end && *d.p == ']') {
                d.p++;
                break;
            } else {
                fail(&d, "expected ',' or ']' in array");
            }
        }
    }
    skip_ws(&d);
    if (d.p != d.end)
        fail(&d, "unexpected text after the value");
    return n;
}

/* ------------------------------------------------------------------ encoding */

/* The output grows in memory from Lua's allocator, owned by a userdata on
 * the stack, so an error anywhere (a bad value, out of memory) frees it
 * with the userdata. A luaL_Buffer cannot be used: the encoder pushes and
 * pops values between additions. */
typedef struct jbuf {
    char *p;
    size_t n, cap;
    lua_Alloc f;
    void *ud;
} jbuf;

static void buf_release(jbuf *b)
{
    if (b->p)
        b->f(b->ud, b->p, b->cap, 0);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int buf_gc(lua_State *L)
{
    buf_release(luaL_checkudata(L, 1, MT_BUF));
    return 0;
}

static void buf_need(lua_State *L, jbuf *b, size_t more)
{
    if (more <= b->cap - b->n)
        return;
    if (more > SIZE_MAX - b->n)
        luaL_error(L, "JSON: text too large");
    size_t want = b->n + more, cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *p = b->f(b->ud, b->p, b->p ? b->cap : 0, cap);
    if (!p) {
        /* What lauxlib's own buffers raise when their allocation fails. */
        lua_pushliteral(L, "not enough memory");
        lua_error(L);
    }
    b->p = p;
    b->cap = cap;
}

static void buf_add(lua_State *L, jbuf *b, const void *s, size_t n)
{
    buf_need(L, b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void buf_addc(lua_State *L, jbuf *b, char c)
{
    buf_need(L, b, 1);
    b->p[b->n++] = c;
}

typedef struct enc {
    lua_State *L;
    jbuf *b;
    int seen; /* stack index of the set of tables being encoded (cycles) */
    int depth;
} enc;

static void encode_value(enc *e, int idx);

static void encode_string(enc *e, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    buf_need(e->L, e->b, len + 2);
    buf_addc(e->L, e->b, '"');
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x80) {
            size_t n = utf8_len(p, end);
            if (!n)
                luaL_error(e->L, "JSON: cannot encode a string that is not valid UTF-8");
            p += n;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            p++;
            continue;
        }
        buf_add(e->L, e->b, run, (size_t)(p - run));
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        buf_add(e->L, e->b, esc, n);
        run = ++p;
    }
    buf_add(e->L, e->b, run, (size_t)(p - run));
    buf_addc(e->L, e->b, '"');
}

static void encode_number(enc *e, int idx)
{
    char tmp[64];
    size_t n;
    if (lua_isinteger(e->L, idx)) {
        n = (size_t)snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(e->L, idx));
    } else {
        double x = (double)lua_tonumber(e->L, idx);
        if (isnan(x) || isinf(x))
            luaL_error(e->L, "JSON: cannot encode NaN or infinity");
        n = json_double(tmp, sizeof tmp, x);
    }
    buf_add(e->L, e->b, tmp, n);
}

typedef struct okey {
    const char *s;
    size_t len;
    lua_Integer at; /* its index in the table that anchors the keys */
} okey;

static int okey_cmp(const void *a, const void *b)
{
    const okey *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Objects come out with their keys sorted, so equal tables give equal text.
 * The keys are anchored in a table of their own: a finalizer that runs
 * during an allocation here may remove them from the object. */
static void encode_object(enc *e, int idx, size_t nkeys)
{
    lua_State *L = e->L;
    if (nkeys > (size_t)INT32_MAX || nkeys > SIZE_MAX / sizeof(okey))
        luaL_error(L, "JSON: table too large");
    okey *ks = lua_newuserdatauv(L, nkeys * sizeof *ks, 0);
    lua_createtable(L, (int)nkeys, 0);
    int anchor = lua_gettop(L);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (n == nkeys || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "JSON: table changed while it was encoded");
        ks[n].s = lua_tolstring(L, -1, &ks[n].len);
        ks[n].at = (lua_Integer)n + 1;
        lua_pushvalue(L, -1);
        lua_rawseti(L, anchor, ks[n].at);
        n++;
    }
    qsort(ks, n, sizeof *ks, okey_cmp);
    buf_addc(L, e->b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addc(L, e->b, ',');
        encode_string(e, ks[i].s, ks[i].len);
        buf_addc(L, e->b, ':');
        lua_rawgeti(L, anchor, ks[i].at);
        lua_rawget(L, idx);
        encode_value(e, lua_gettop(L));
        lua_pop(L, 1);
    }
    buf_addc(L, e->b, '}');
    lua_pop(L, 2);
}

static int marked_object(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, MT_OBJECT);
    int yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

static void encode_table(enc *e, int idx)
{
    lua_State *L = e->L;
    if (++e->depth > LP_JSON_MAX_DEPTH)
        luaL_error(L, "JSON: cannot encode nesting deeper than %d", LP_JSON_MAX_DEPTH);
    luaL_checkstack(L, 8, "JSON nesting");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, e->seen) != LUA_TNIL)
        luaL_error(L, "JSON: cannot encode a table that contains itself");
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen);

    /* Arrays have exactly the keys 1..n, objects only string keys. */
    size_t nkeys = 0, nstr = 0;
    lua_Integer maxi = 0;
    int nonpos = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        nkeys++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            nstr++;
        } else if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k < 1)
                nonpos = 1;
            else if (k > maxi)
                maxi = k;
        } else {
            const char *what = lua_type(L, -1) == LUA_TNUMBER ? "non-integer number" : luaL_typename(L, -1);
            luaL_error(L, "JSON: cannot encode a table with a %s key (keys must be strings, or 1..n for an array)",
                       what);
        }
    }
    if (nkeys == 0) {
        buf_add(L, e->b, marked_object(L, idx) ? "{}" : "[]", 2);
    } else if (nstr == nkeys) {
        encode_object(e, idx, nkeys);
    } else if (nstr == 0 && !nonpos && (lua_Unsigned)maxi == nkeys) {
        buf_addc(L, e->b, '[');
        for (lua_Integer i = 1; i <= maxi; i++) {
            if (i > 1)
                buf_addc(L, e->b, ',');
            lua_rawgeti(L, idx, i);
            encode_value(e, lua_gettop(L));
            lua_pop(L, 1);
        }
        buf_addc(L, e->b, ']');
    } else if (nstr == 0) {
        luaL_error(L, "JSON: cannot encode an array with holes or keys outside 1..n");
    } else {
        luaL_error(L, "JSON: cannot encode a table with both string and integer keys");
    }

    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen);
    e->depth--;
}

static void encode_value(enc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: buf_add(L, e->b, "null", 4); break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            buf_add(L, e->b, "true", 4);
        else
            buf_add(L, e->b, "false", 5);
        break;
    case LUA_TNUMBER: encode_number(e, idx); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        encode_string(e, s, n);
        break;
    }
    case LUA_TTABLE: encode_table(e, idx); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            buf_add(L, e->b, "null", 4);
            break;
        }
        /* fall through */
    default: luaL_error(L, "JSON: cannot encode a %s value", luaL_typename(L, idx));
    }
}

/* Pushes the buffer and the set of tables being encoded. */
static void encode_begin(lua_State *L, enc *e)
{
    luaL_checkstack(L, 8, "JSON");
    e->L = L;
    e->b = lua_newuserdatauv(L, sizeof *e->b, 0);
    memset(e->b, 0, sizeof *e->b);
    e->b->f = lua_getallocf(L, &e->b->ud);
    set_mt(L, MT_BUF);
    lua_newtable(L);
    e->seen = lua_gettop(L);
    e->depth = 0;
}

/* Replaces what encode_begin pushed with the text. */
static void encode_end(enc *e)
{
    lua_pushlstring(e->L, e->b->p ? e->b->p : "", e->b->n);
    buf_release(e->b);
    lua_replace(e->L, -3);
    lua_pop(e->L, 1);
}

void lp_json_encode(lua_State *L, int idx)
{
    enc e;
    idx = lua_absindex(L, idx);
    encode_begin(L, &e);
    encode_value(&e, idx);
    encode_end(&e);
}

void lp_json_encode_values(lua_State *L, int first, int n)
{
    if (n == 0) {
        lua_pushliteral(L, "null");
        return;
    }
    first = lua_absindex(L, first);
    if (n == 1) {
        lp_json_encode(L, first);
        return;
    }
    enc e;
    encode_begin(L, &e);
    buf_addc(L, e.b, '[');
    for (int i = 0; i < n; i++) {
        if (i)
            buf_addc(L, e.b, ',');
        encode_value(&e, first + i);
    }
    buf_addc(L, e.b, ']');
    encode_end(&e);
}

/* ------------------------------------------------------------ the json table */

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lp_json_encode(L, 1);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lp_json_decode(L, s, n);
    return 1;
}

static int l_mark(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    set_mt(L, mt);
    return 1;
}

static int l_array(lua_State *L) { return l_mark(L, MT_ARRAY); }
static int l_object(lua_State *L) { return l_mark(L, MT_OBJECT); }

void lp_json_open(lua_State *L)
{
    luaL_newmetatable(L, MT_ARRAY);
    luaL_newmetatable(L, MT_OBJECT);
    if (luaL_newmetatable(L, MT_BUF)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 3);
    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {"object", l_object}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}

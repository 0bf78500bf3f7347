/* Wire format and message stacks (src/common/abi.c, docs/abi.md). Buffers
 * handed to the decoder are malloc'd at their exact length so that ASan
 * catches any read past the end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "abi.h"
#include "t.h"
#include "../common/wire_eq.h"

#define BIG 4096

static const uint8_t *S(const char *s) { return (const uint8_t *)s; }

static uint8_t *dup(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (n)
        memcpy(q, p, n);
    return q;
}

static sl_msg msg_kind(uint16_t kind)
{
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    return m;
}

static sl_wire_value val_u64(uint8_t type, uint64_t x)
{
    sl_wire_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    if (type == SL_T_I32 || type == SL_T_U32 || type == SL_T_F32)
        v.v.u32 = (uint32_t)x;
    else if (type == SL_T_BOOL)
        v.v.b = x != 0;
    else
        v.v.u64 = x;
    return v;
}

static sl_wire_value val_buf(uint8_t type, const char *s, uint32_t len)
{
    sl_wire_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.v.buf.ptr = S(s);
    v.v.buf.len = len;
    return v;
}

static uint8_t name255[255];

/* One message of every kind, with awkward values. */
static int sample_msgs(sl_msg *out)
{
    int n = 0;
    sl_msg m = msg_kind(SL_MSG_CALL);
    m.name = S("add");
    m.name_len = 3;
    m.count = 2;
    m.values[0] = val_u64(SL_T_I32, (uint32_t)-7);
    m.values[1] = val_buf(SL_T_STRING, "", 0);
    out[n++] = m;

    m = msg_kind(SL_MSG_HOSTCALL);
    m.name = name255;
    m.name_len = 255;
    m.count = SL_ABI_MAX_VALUES;
    for (unsigned i = 0; i < SL_ABI_MAX_VALUES; i++) {
        uint8_t t = (uint8_t)(1 + i % SL_T_MAX);
        m.values[i] = t == SL_T_STRING || t == SL_T_BYTES ? val_buf(t, "xyz\0w", 5)
                                                          : val_u64(t, 0x8000000000000001ull + i);
    }
    out[n++] = m;

    m = msg_kind(SL_MSG_RESULT);
    m.count = 1;
    m.values[0] = val_u64(SL_T_F64, 0x7ff0000000000001ull); /* signalling NaN */
    out[n++] = m;

    m = msg_kind(SL_MSG_RESULT);
    m.status = SL_ABI_ETYPE;
    m.text = S("bad arg");
    m.text_len = 7;
    out[n++] = m;

    m = msg_kind(SL_MSG_HOSTRESULT);
    m.count = 1;
    m.values[0] = val_u64(SL_T_VOID, 0);
    out[n++] = m;

    m = msg_kind(SL_MSG_HOSTRESULT);
    m.status = -5; /* unknown statuses still travel */
    out[n++] = m;

    m = msg_kind(SL_MSG_PRINT);
    m.text = S("hello\n");
    m.text_len = 6;
    out[n++] = m;

    m = msg_kind(SL_MSG_ABORT);
    m.code = INT64_MIN;
    m.text = S("boom");
    m.text_len = 4;
    out[n++] = m;

    m = msg_kind(SL_MSG_LOG);
    m.code = 3;
    out[n++] = m;

    m = msg_kind(SL_MSG_FAULT);
    m.code = 14;
    m.fault[0] = 2;
    m.fault[1] = 0xFFFFFFFFFFFFE000ull;
    m.fault[2] = 0x401234;
    out[n++] = m;
    return n;
}

#define NSAMPLES 10

static void test_roundtrip_every_kind(void)
{
    sl_msg ms[NSAMPLES];
    int n = sample_msgs(ms);
    REQUIRE(n == NSAMPLES);
    for (int i = 0; i < n; i++) {
        uint8_t buf[BIG], buf2[BIG];
        size_t len = 0, len2 = 0;
        REQUIRE(sl_abi_encode(&ms[i], buf, sizeof buf, &len) == 0);
        CHECK_EQ(len % 8, 0);
        CHECK_EQ(buf[0] | buf[1] << 8 | buf[2] << 16 | (uint32_t)buf[3] << 24, len);
        CHECK_EQ(buf[4] | buf[5] << 8, SL_ABI_WIRE_VERSION);
        CHECK_EQ(buf[6] | buf[7] << 8, ms[i].kind);
        uint8_t *exact = dup(buf, len);
        sl_msg d;
        memset(&d, 0xA5, sizeof d);
        CHECK_EQ(sl_abi_decode(exact, len, &d), 0);
        CHECK(msg_eq(&ms[i], &d));
        /* Canonical: re-encoding the decoded message gives the same bytes. */
        CHECK_EQ(sl_abi_encode(&d, buf2, sizeof buf2, &len2), 0);
        CHECK_EQ(len2, len);
        CHECK(memcmp(buf, buf2, len) == 0);
        /* Unused fields are cleared. */
        if (d.kind == SL_MSG_FAULT)
            CHECK(d.text == NULL && d.count == 0 && d.name_len == 0);
        if (d.kind == SL_MSG_CALL)
            CHECK(d.status == 0 && d.code == 0 && d.text_len == 0 && d.fault[2] == 0);
        free(exact);
    }
}

/* The exact bytes of docs/abi.md for a small CALL. */
static void test_golden_bytes(void)
{
    sl_msg m = msg_kind(SL_MSG_CALL);
    m.name = S("f");
    m.name_len = 1;
    m.count = 3;
    m.values[0] = val_u64(SL_T_I32, (uint32_t)-2);
    m.values[1] = val_u64(SL_T_BOOL, 1);
    m.values[2] = val_buf(SL_T_STRING, "hi", 2);
    const uint8_t want[] = {
        40, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 17, 0, 0, 0, /* size 40, v1, CALL, flags, body 17 */
        1, 'f', 3,                                        /* name, count */
        1, 0xfe, 0xff, 0xff, 0xff,                        /* i32 -2 */
        8, 1,                                             /* bool true */
        7, 2, 0, 0, 0, 'h', 'i',                          /* string "hi" */
        0, 0, 0, 0, 0, 0, 0,                              /* padding */
    };
    uint8_t buf[64];
    size_t len = 0;
    REQUIRE(sl_abi_encode(&m, buf, sizeof buf, &len) == 0);
    CHECK_EQ(len, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);

    sl_msg r = msg_kind(SL_MSG_RESULT);
    r.status = SL_ABI_ENOTFOUND;
    r.text = S("no");
    r.text_len = 2;
    const uint8_t want_r[] = {
        32, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 10, 0, 0, 0,
        1, 0, 0, 0, 2, 0, 0, 0, 'n', 'o', 0, 0, 0, 0, 0, 0,
    };
    REQUIRE(sl_abi_encode(&r, buf, sizeof buf, &len) == 0);
    CHECK_EQ(len, sizeof want_r);
    CHECK(memcmp(buf, want_r, sizeof want_r) == 0);

    sl_msg f = msg_kind(SL_MSG_FAULT);
    f.code = 13;
    f.fault[0] = 0x10;
    f.fault[1] = 0;
    f.fault[2] = 0x1122334455667788ull;
    REQUIRE(sl_abi_encode(&f, buf, sizeof buf, &len) == 0);
    CHECK_EQ(len, 48);
    CHECK_EQ(buf[12], 32);
    CHECK_EQ(buf[16], 13);
    CHECK_EQ(buf[24], 0x10);
    CHECK_EQ(buf[40], 0x88);
    CHECK_EQ(buf[47], 0x11);
}

static void roundtrip_value(sl_wire_value v, bool as_result)
{
    sl_msg m = msg_kind(as_result ? SL_MSG_HOSTRESULT : SL_MSG_HOSTCALL);
    m.name = S("n");
    m.name_len = as_result ? 0 : 1;
    m.count = 1;
    m.values[0] = v;
    uint8_t buf[256];
    size_t len;
    REQUIRE(sl_abi_encode(&m, buf, sizeof buf, &len) == 0);
    uint8_t *exact = dup(buf, len);
    sl_msg d;
    CHECK_EQ(sl_abi_decode(exact, len, &d), 0);
    CHECK_EQ(d.count, 1);
    CHECK(value_eq(&v, &d.values[0]));
    free(exact);
}

static void test_every_type(void)
{
    for (int r = 0; r < 2; r++) {
        roundtrip_value(val_u64(SL_T_I32, 0x80000000u), r);
        roundtrip_value(val_u64(SL_T_U32, 0xFFFFFFFFu), r);
        roundtrip_value(val_u64(SL_T_I64, 0x8000000000000000ull), r);
        roundtrip_value(val_u64(SL_T_U64, 0xFFFFFFFFFFFFFFFFull), r);
        roundtrip_value(val_u64(SL_T_F32, 0x7f800001u), r);             /* sNaN */
        roundtrip_value(val_u64(SL_T_F32, 0xffc12345u), r);             /* -qNaN payload */
        roundtrip_value(val_u64(SL_T_F64, 0x7ff0000000000001ull), r);   /* sNaN */
        roundtrip_value(val_u64(SL_T_F64, 0xfff8dead0000beefull), r);   /* -qNaN payload */
        roundtrip_value(val_u64(SL_T_BOOL, 0), r);
        roundtrip_value(val_u64(SL_T_BOOL, 1), r);
        roundtrip_value(val_buf(SL_T_STRING, "", 0), r);
        roundtrip_value(val_buf(SL_T_STRING, "h\0i", 3), r);
        roundtrip_value(val_buf(SL_T_BYTES, "", 0), r);
        roundtrip_value(val_buf(SL_T_BYTES, "\xff\x00\x01", 3), r);
    }
    roundtrip_value(val_u64(SL_T_VOID, 0), true);

    /* Signed values via the typed members. */
    sl_wire_value v = val_u64(SL_T_I32, 0);
    v.v.i32 = -123456;
    roundtrip_value(v, false);
    sl_msg m = msg_kind(SL_MSG_CALL);
    m.count = 1;
    m.values[0] = v;
    uint8_t buf[64];
    size_t len;
    REQUIRE(sl_abi_encode(&m, buf, sizeof buf, &len) == 0);
    sl_msg d;
    REQUIRE(sl_abi_decode(buf, len, &d) == 0);
    CHECK_EQ(d.values[0].v.i32, -123456);
    /* A double survives numerically too. */
    m.values[0].type = SL_T_F64;
    m.values[0].v.f64 = -2.5;
    REQUIRE(sl_abi_encode(&m, buf, sizeof buf, &len) == 0);
    REQUIRE(sl_abi_decode(buf, len, &d) == 0);
    CHECK(d.values[0].v.f64 == -2.5);
}

static void test_encode_invalid(void)
{
    uint8_t buf[BIG];
    size_t len;
    sl_msg m = msg_kind(0);
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_KIND);
    m.kind = SL_MSG_EXEC + 1;
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_KIND);

    m = msg_kind(SL_MSG_CALL);
    m.name = name255;
    m.name_len = 256;
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_LIMIT);
    m.name_len = 1;
    m.count = SL_ABI_MAX_VALUES + 1;
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_LIMIT);
    m.count = 1;
    m.values[0] = val_u64(SL_T_VOID, 0);
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_TYPE);
    m.values[0] = val_u64(SL_T_MAX + 1, 0);
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_TYPE);
    m.values[0] = val_buf(SL_T_BYTES, NULL, 4);
    m.values[0].v.buf.ptr = NULL;
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_MALFORMED);

    m = msg_kind(SL_MSG_RESULT);
    m.count = 0; /* status 0 needs exactly one value */
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_LIMIT);
    m = msg_kind(SL_MSG_PRINT);
    m.text_len = 3;
    CHECK_EQ(sl_abi_encode(&m, buf, sizeof buf, &len), SL_ABI_E_MALFORMED);
}

/* Every capacity short of the frame fails with E_SPACE and writes nothing
 * past the capacity. */
static void test_encode_capacity(void)
{
    sl_msg ms[NSAMPLES];
    int n = sample_msgs(ms);
    for (int i = 0; i < n; i++) {
        uint8_t buf[BIG + 16];
        size_t need;
        REQUIRE(sl_abi_encode(&ms[i], buf, BIG, &need) == 0);
        for (size_t cap = 0; cap < need; cap++) {
            memset(buf, 0xCC, sizeof buf);
            size_t len = 777;
            CHECK_EQ(sl_abi_encode(&ms[i], buf, cap, &len), SL_ABI_E_SPACE);
            CHECK_EQ(len, 777);
            bool clean = true;
            for (size_t k = cap; k < sizeof buf; k++)
                clean &= buf[k] == 0xCC;
            CHECK(clean);
        }
        size_t len;
        CHECK_EQ(sl_abi_encode(&ms[i], buf, need, &len), 0);
        CHECK_EQ(len, need);
    }
}

static size_t encode_sample(int i, uint8_t *buf, size_t cap)
{
    sl_msg ms[NSAMPLES];
    sample_msgs(ms);
    size_t len = 0;
    if (sl_abi_encode(&ms[i], buf, cap, &len) != 0)
        return 0;
    return len;
}

static void test_truncation(void)
{
    for (int i = 0; i < NSAMPLES; i++) {
        uint8_t buf[BIG];
        size_t size = encode_sample(i, buf, sizeof buf);
        REQUIRE(size >= SL_ABI_HDR_SIZE);
        for (size_t len = 0; len < size; len++) {
            uint8_t *p = dup(buf, len);
            sl_msg d;
            CHECK_EQ(sl_abi_decode(p, len, &d), SL_ABI_E_TRUNCATED);
            free(p);
        }
        /* Extra bytes after the frame are not part of it. */
        buf[size] = 0x55;
        sl_msg d;
        CHECK_EQ(sl_abi_decode(buf, size + 1, &d), 0);
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int decode_bytes(const uint8_t *b, size_t n)
{
    uint8_t *p = dup(b, n);
    sl_msg d;
    int rc = sl_abi_decode(p, n, &d);
    free(p);
    return rc;
}

static void test_decode_errors(void)
{
    uint8_t buf[BIG], c[BIG];
    /* CALL "f"(i32 -2, bool, "hi"), see test_golden_bytes. */
    sl_msg m = msg_kind(SL_MSG_CALL);
    m.name = S("f");
    m.name_len = 1;
    m.count = 3;
    m.values[0] = val_u64(SL_T_I32, 0);
    m.values[1] = val_u64(SL_T_BOOL, 1);
    m.values[2] = val_buf(SL_T_STRING, "hi", 2);
    size_t n;
    REQUIRE(sl_abi_encode(&m, buf, sizeof buf, &n) == 0 && n == 40);
    CHECK_EQ(decode_bytes(buf, n), 0);

#define MUT(off, val, want)                                                          \
    do {                                                                             \
        memcpy(c, buf, n);                                                           \
        c[off] = (uint8_t)(val);                                                     \
        CHECK_EQ(decode_bytes(c, n), (uint64_t)(int64_t)(want));                     \
    } while (0)
    MUT(0, 8, SL_ABI_E_TRUNCATED);   /* size < header */
    MUT(0, 48, SL_ABI_E_TRUNCATED);  /* size > len */
    MUT(0, 33, SL_ABI_E_MALFORMED);  /* size not align8(16 + body_len) */
    MUT(4, 2, SL_ABI_E_VERSION);
    MUT(5, 1, SL_ABI_E_VERSION);
    MUT(6, 0, SL_ABI_E_KIND);
    MUT(6, SL_MSG_EXEC + 1, SL_ABI_E_KIND);
    MUT(7, 1, SL_ABI_E_KIND);
    MUT(8, 1, SL_ABI_E_MALFORMED);   /* flags */
    MUT(11, 0x80, SL_ABI_E_MALFORMED);
    MUT(12, 28, SL_ABI_E_MALFORMED); /* body_len not matching size */
    MUT(12, 21, SL_ABI_E_MALFORMED); /* body claims a padding byte: left over */
    MUT(15, 1, SL_ABI_E_MALFORMED);
    MUT(16, 200, SL_ABI_E_TRUNCATED); /* name_len past body */
    MUT(18, 33, SL_ABI_E_LIMIT);      /* count */
    MUT(18, 2, SL_ABI_E_MALFORMED);   /* fewer values: bytes left over */
    MUT(18, 4, SL_ABI_E_TRUNCATED);   /* more values than bytes */
    MUT(19, 0, SL_ABI_E_TYPE);        /* VOID argument */
    MUT(19, 10, SL_ABI_E_TYPE);       /* unknown tag */
    MUT(19, 0xff, SL_ABI_E_TYPE);
    MUT(25, 2, SL_ABI_E_MALFORMED);   /* bool 2 */
    MUT(25, 0xff, SL_ABI_E_MALFORMED);
    MUT(27, 3, SL_ABI_E_TRUNCATED);   /* string len past body */
    MUT(30, 0xff, SL_ABI_E_TRUNCATED); /* string len 0xff000002 */
    MUT(27, 1, SL_ABI_E_MALFORMED);   /* shorter string: byte left over */
    MUT(36, 1, SL_ABI_E_MALFORMED);   /* padding */
    MUT(39, 0x80, SL_ABI_E_MALFORMED);
#undef MUT

    /* Huge text length in a RESULT: must not overflow. */
    sl_msg r = msg_kind(SL_MSG_RESULT);
    r.status = 1;
    REQUIRE(sl_abi_encode(&r, buf, sizeof buf, &n) == 0);
    memcpy(c, buf, n);
    put32(c + 20, 0xFFFFFFFFu);
    CHECK_EQ(decode_bytes(c, n), SL_ABI_E_TRUNCATED);
    put32(c + 20, 0xFFFFFFF0u);
    CHECK_EQ(decode_bytes(c, n), SL_ABI_E_TRUNCATED);
    /* size 0xFFFFFFF8 with a matching body_len: frame bigger than the buffer. */
    memcpy(c, buf, n);
    put32(c, 0xFFFFFFF8u);
    put32(c + 12, 0xFFFFFFF8u - 16);
    CHECK_EQ(decode_bytes(c, n), SL_ABI_E_TRUNCATED);
    /* body_len wrapping: align8(16 + 0xFFFFFFFF) must not wrap to a small size. */
    memcpy(c, buf, n);
    put32(c + 12, 0xFFFFFFFFu);
    CHECK_EQ(decode_bytes(c, n), SL_ABI_E_MALFORMED);
    CHECK_EQ(sl_abi_decode(NULL, 0, &r), SL_ABI_E_TRUNCATED);
}

/* Every single-byte change anywhere in the frame (every position, every value)
 * either fails or decodes to a message whose encoding is exactly the mutated
 * frame. */
static void test_single_byte_corruption(void)
{
    for (int i = 0; i < NSAMPLES; i++) {
        uint8_t buf[BIG], re[BIG];
        size_t size = encode_sample(i, buf, sizeof buf);
        REQUIRE(size > 0);
        size_t limit = size < 400 ? size : 400; /* the long HOSTCALL: cap the time */
        int ok = 0;
        for (size_t pos = 0; pos < limit; pos++) {
            for (int val = 0; val < 256; val++) {
                if (val == buf[pos])
                    continue;
                uint8_t *p = dup(buf, size);
                p[pos] = (uint8_t)val;
                sl_msg d;
                if (sl_abi_decode(p, size, &d) == 0) {
                    size_t n2;
                    ok++;
                    int rc = sl_abi_encode(&d, re, sizeof re, &n2);
                    CHECK_EQ(rc, 0);
                    uint32_t fsz = (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
                    if (rc == 0 && (n2 != fsz || memcmp(re, p, n2) != 0)) {
                        printf("  sample %d pos %zu val %d not canonical\n", i, pos, val);
                        t_failed_now = 1;
                    }
                }
                free(p);
            }
        }
        (void)ok;
    }
}

/* Header corruption specifically: any change to size/version/kind/flags/body_len
 * bytes of a CALL never yields the original message by accident. */
static void test_header_corruption_detected(void)
{
    uint8_t buf[BIG];
    size_t size = encode_sample(0, buf, sizeof buf);
    REQUIRE(size > 0);
    for (size_t pos = 0; pos < SL_ABI_HDR_SIZE; pos++)
        for (int val = 0; val < 256; val++) {
            if (val == buf[pos])
                continue;
            uint8_t *p = dup(buf, size);
            p[pos] = (uint8_t)val;
            sl_msg d;
            int rc = sl_abi_decode(p, size, &d);
            /* Only a kind change CALL<->HOSTCALL keeps the body valid. */
            if (rc == 0)
                CHECK(pos == 6 && val == SL_MSG_HOSTCALL && d.kind == SL_MSG_HOSTCALL);
            free(p);
        }
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_stack_order(void)
{
    size_t cap = 1024;
    uint8_t *st = malloc(cap);
    memset(st, 0xEE, cap);
    sl_abi_reset(st, cap);
    CHECK_EQ(ld64(st), 0);
    sl_msg got;
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_EMPTY);
    CHECK_EQ(sl_abi_pop(st, cap), SL_ABI_E_EMPTY);

    sl_msg ms[NSAMPLES];
    sample_msgs(ms);
    uint8_t tmp[BIG];
    size_t s0, s3;
    REQUIRE(sl_abi_encode(&ms[0], tmp, sizeof tmp, &s0) == 0);
    REQUIRE(sl_abi_encode(&ms[3], tmp, sizeof tmp, &s3) == 0);

    REQUIRE(sl_abi_push(st, cap, &ms[0]) == 0);
    CHECK_EQ(ld64(st), s0 + 8);
    CHECK_EQ(st[8 + s0] | st[8 + s0 + 1] << 8, s0); /* footer */
    REQUIRE(sl_abi_push(st, cap, &ms[3]) == 0);
    CHECK_EQ(ld64(st), s0 + 8 + s3 + 8);

    CHECK_EQ(sl_abi_peek(st, cap, &got), 0);
    CHECK(msg_eq(&got, &ms[3]));
    CHECK_EQ(sl_abi_peek(st, cap, &got), 0); /* peek does not remove */
    CHECK(msg_eq(&got, &ms[3]));
    CHECK_EQ(sl_abi_pop(st, cap), 0);
    CHECK_EQ(ld64(st), s0 + 8);
    CHECK_EQ(sl_abi_peek(st, cap, &got), 0);
    CHECK(msg_eq(&got, &ms[0]));
    /* Popped CALL's name still points into the buffer. */
    CHECK(got.name >= st && got.name < st + cap);

    /* Push after pop reuses the space. */
    REQUIRE(sl_abi_push(st, cap, &ms[6]) == 0);
    CHECK_EQ(sl_abi_peek(st, cap, &got), 0);
    CHECK(msg_eq(&got, &ms[6]));
    CHECK_EQ(sl_abi_pop(st, cap), 0);
    CHECK_EQ(sl_abi_pop(st, cap), 0);
    CHECK_EQ(ld64(st), 0);
    CHECK_EQ(sl_abi_pop(st, cap), SL_ABI_E_EMPTY);

    /* Fill until E_SPACE; top must not move on failure and LIFO holds. */
    int pushed = 0;
    for (;;) {
        uint64_t before = ld64(st);
        int rc = sl_abi_push(st, cap, &ms[pushed % 3 == 2 ? 9 : 6]);
        if (rc) {
            CHECK_EQ(rc, SL_ABI_E_SPACE);
            CHECK_EQ(ld64(st), before);
            break;
        }
        pushed++;
    }
    CHECK(pushed > 5);
    for (int k = pushed - 1; k >= 0; k--) {
        REQUIRE(sl_abi_peek(st, cap, &got) == 0);
        CHECK_EQ(got.kind, k % 3 == 2 ? SL_MSG_FAULT : SL_MSG_PRINT);
        REQUIRE(sl_abi_pop(st, cap) == 0);
    }
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_EMPTY);

    sl_abi_push(st, cap, &ms[6]);
    sl_abi_reset(st, cap);
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_EMPTY);
    free(st);

    /* Buffers too small for a header. */
    uint8_t small[8] = {0};
    CHECK_EQ(sl_abi_push(small, 7, &ms[6]), SL_ABI_E_TRUNCATED);
    CHECK_EQ(sl_abi_peek(small, 7, &got), SL_ABI_E_TRUNCATED);
    CHECK_EQ(sl_abi_push(small, 8, &ms[6]), SL_ABI_E_SPACE);
    sl_abi_reset(small, 7); /* must not write */
}

static void test_stack_corruption(void)
{
    size_t cap = 512;
    uint8_t *st = calloc(1, cap);
    sl_msg ms[NSAMPLES], got;
    sample_msgs(ms);

    /* A well-formed frame and footer at an unaligned offset: top % 8 != 0. */
    size_t fl;
    REQUIRE(sl_abi_encode(&ms[6], st + 12, cap - 20, &fl) == 0);
    put32(st + 12 + fl, (uint32_t)fl);
    st64(st, 4 + fl + 8);
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_MALFORMED);
    CHECK_EQ(sl_abi_push(st, cap, &ms[6]), SL_ABI_E_MALFORMED);
    memset(st, 0, cap);

    sl_abi_reset(st, cap);
    REQUIRE(sl_abi_push(st, cap, &ms[6]) == 0);
    REQUIRE(sl_abi_push(st, cap, &ms[0]) == 0);
    uint8_t *good = dup(st, cap);
    uint64_t top = ld64(st);

    st64(st, cap - 8 + 8); /* past the end */
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_TRUNCATED);
    CHECK_EQ(sl_abi_pop(st, cap), SL_ABI_E_TRUNCATED);
    CHECK_EQ(sl_abi_push(st, cap, &ms[6]), SL_ABI_E_TRUNCATED);
    st64(st, 0xFFFFFFFFFFFFFFF8ull);
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_TRUNCATED);
    CHECK_EQ(sl_abi_push(st, cap, &ms[6]), SL_ABI_E_TRUNCATED);
    st64(st, 0x100000000ull + top); /* wraps to a valid value on 32-bit size_t */
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_TRUNCATED);
    st64(st, top - 4);
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_MALFORMED);
    st64(st, 16); /* smaller than any frame + footer */
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_TRUNCATED);
    st64(st, top - 8); /* footer now read from the frame's padding/body */
    CHECK(sl_abi_peek(st, cap, &got) < 0);
    CHECK(sl_abi_pop(st, cap) < 0);

    size_t foot = 8 + top - 8;
    memcpy(st, good, cap);
    st[foot + 4] = 1; /* reserved */
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_MALFORMED);
    memcpy(st, good, cap);
    put32(st + foot, (uint32_t)top); /* larger than the space below */
    CHECK_EQ(sl_abi_peek(st, cap, &got), SL_ABI_E_TRUNCATED);
    put32(st + foot, 0xFFFFFFF8u);
    CHECK_EQ(sl_abi_pop(st, cap), SL_ABI_E_TRUNCATED);
    put32(st + foot, 8);
    CHECK_EQ(sl_abi_pop(st, cap), SL_ABI_E_TRUNCATED);
    /* Footer size that lands on the first frame plus part of the second. */
    memcpy(st, good, cap);
    put32(st + foot, (uint32_t)(top - 8));
    CHECK(sl_abi_peek(st, cap, &got) < 0);
    /* Frame header disagreeing with the footer. */
    memcpy(st, good, cap);
    uint32_t fs = (uint32_t)(st[foot] | st[foot + 1] << 8);
    size_t start = foot - fs;
    put32(st + start, fs - 8);
    CHECK(sl_abi_peek(st, cap, &got) < 0);
    CHECK_EQ(ld64(st), top);
    CHECK(sl_abi_pop(st, cap) < 0);
    CHECK_EQ(ld64(st), top); /* failed pop leaves top alone */

    /* Every top value 0..cap over the valid contents: no OOB (ASan), and a
     * successful peek only at the two real message boundaries. */
    for (uint64_t t = 0; t <= cap; t++) {
        memcpy(st, good, cap);
        st64(st, t);
        int rc = sl_abi_peek(st, cap, &got);
        int rp = sl_abi_pop(st, cap);
        CHECK_EQ(rc, rp);
        if (rc == 0)
            CHECK(t == top || t + 8 + (uint64_t)fs == top);
    }
    /* Every single-byte change: never OOB; success must stay self-consistent. */
    for (size_t pos = 0; pos < 8 + top; pos++)
        for (int val = 0; val < 256; val += 7) {
            memcpy(st, good, cap);
            st[pos] = (uint8_t)(st[pos] ^ val);
            if (sl_abi_peek(st, cap, &got) == 0) {
                uint8_t re[BIG];
                size_t n2;
                CHECK_EQ(sl_abi_encode(&got, re, sizeof re, &n2), 0);
            }
            while (sl_abi_pop(st, cap) == 0)
                ;
        }
    free(good);
    free(st);
}

static void test_signatures(void)
{
    sl_abi_sig sigs[3];
    memset(sigs, 0, sizeof sigs);
    sigs[0].name = S("add");
    sigs[0].name_len = 3;
    sigs[0].ret = SL_T_I64;
    sigs[0].nparams = 2;
    sigs[0].params[0] = SL_T_I64;
    sigs[0].params[1] = SL_T_I64;
    sigs[1].name = name255;
    sigs[1].name_len = 255;
    sigs[1].ret = SL_T_VOID;
    sigs[1].nparams = SL_ABI_MAX_VALUES;
    for (unsigned i = 0; i < SL_ABI_MAX_VALUES; i++)
        sigs[1].params[i] = (uint8_t)(1 + i % SL_T_MAX);
    sigs[2].name = S("");
    sigs[2].ret = SL_T_BYTES;

    uint8_t buf[1024];
    size_t len = 0;
    REQUIRE(sl_abi_sig_encode(sigs, 3, buf, sizeof buf, &len) == 0);
    CHECK_EQ(len, 4 + (1 + 3 + 2 + 2) + (1 + 255 + 2 + 32) + (1 + 0 + 2 + 0));
    CHECK_EQ(buf[0], 3);
    CHECK_EQ(buf[4], 3);
    CHECK(memcmp(buf + 5, "add", 3) == 0);
    CHECK_EQ(buf[8], SL_T_I64);
    CHECK_EQ(buf[9], 2);

    uint8_t *p = dup(buf, len);
    uint32_t count = 0;
    size_t pos = 0;
    REQUIRE(sl_abi_sig_open(p, len, &count, &pos) == 0);
    CHECK_EQ(count, 3);
    for (uint32_t i = 0; i < count; i++) {
        sl_abi_sig s;
        REQUIRE(sl_abi_sig_next(p, len, &pos, &s) == 0);
        CHECK(span_eq(s.name, s.name_len, sigs[i].name, sigs[i].name_len));
        CHECK_EQ(s.ret, sigs[i].ret);
        CHECK_EQ(s.nparams, sigs[i].nparams);
        CHECK(memcmp(s.params, sigs[i].params, s.nparams) == 0);
    }
    sl_abi_sig s;
    CHECK_EQ(sl_abi_sig_next(p, len, &pos, &s), SL_ABI_E_EMPTY);
    pos = 0;
    CHECK_EQ(sl_abi_sig_next(p, len, &pos, &s), SL_ABI_E_MALFORMED);
    free(p);

    /* Every truncation fails; a trailing byte fails; count off by one fails. */
    for (size_t l = 0; l < len; l++) {
        p = dup(buf, l);
        CHECK(sl_abi_sig_open(p, l, &count, &pos) < 0);
        free(p);
    }
    buf[len] = 0;
    CHECK_EQ(sl_abi_sig_open(buf, len + 1, &count, &pos), SL_ABI_E_MALFORMED);
    buf[0] = 4;
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), SL_ABI_E_TRUNCATED);
    buf[0] = 0xff;
    buf[3] = 0xff;
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), SL_ABI_E_TRUNCATED);
    buf[0] = 3;
    buf[3] = 0;
    buf[10] = SL_T_VOID; /* first param of "add" */
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), SL_ABI_E_TYPE);
    buf[10] = SL_T_I64;
    buf[8] = SL_T_MAX + 1; /* ret */
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), SL_ABI_E_TYPE);
    buf[8] = SL_T_I64;
    buf[9] = 33;
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), SL_ABI_E_LIMIT);
    buf[9] = 2;
    CHECK_EQ(sl_abi_sig_open(buf, len, &count, &pos), 0);
    CHECK_EQ(count, 3);

    /* Empty registry. */
    size_t l0;
    REQUIRE(sl_abi_sig_encode(NULL, 0, buf, sizeof buf, &l0) == 0);
    CHECK_EQ(l0, 4);
    CHECK_EQ(sl_abi_sig_open(buf, l0, &count, &pos), 0);
    CHECK_EQ(count, 0);
    CHECK_EQ(sl_abi_sig_next(buf, l0, &pos, &s), SL_ABI_E_EMPTY);

    /* Writer errors leave the registry untouched. */
    REQUIRE(sl_abi_sig_init(buf, 16, &l0) == 0);
    CHECK_EQ(sl_abi_sig_add(buf, 16, &l0, &sigs[0]), 0);
    CHECK_EQ(l0, 12);
    CHECK_EQ(sl_abi_sig_add(buf, 16, &l0, &sigs[0]), SL_ABI_E_SPACE);
    CHECK_EQ(l0, 12);
    CHECK_EQ(buf[0], 1);
    sl_abi_sig bad = sigs[0];
    bad.params[1] = SL_T_VOID;
    CHECK_EQ(sl_abi_sig_add(buf, sizeof buf, &l0, &bad), SL_ABI_E_TYPE);
    bad = sigs[0];
    bad.nparams = 33;
    CHECK_EQ(sl_abi_sig_add(buf, sizeof buf, &l0, &bad), SL_ABI_E_LIMIT);
    bad = sigs[0];
    bad.name_len = 256;
    CHECK_EQ(sl_abi_sig_add(buf, sizeof buf, &l0, &bad), SL_ABI_E_LIMIT);
    CHECK_EQ(sl_abi_sig_init(buf, 3, &l0), SL_ABI_E_SPACE);
    put32(buf, 0xFFFFFFFFu); /* count would wrap */
    CHECK_EQ(sl_abi_sig_add(buf, sizeof buf, &l0, &sigs[0]), SL_ABI_E_LIMIT);
    CHECK_EQ(l0, 12);

    /* The registry travels as the BYTES return value of sl.signatures. */
    REQUIRE(sl_abi_sig_encode(sigs, 3, buf, sizeof buf, &len) == 0);
    sl_msg r = msg_kind(SL_MSG_RESULT);
    r.count = 1;
    r.values[0].type = SL_T_BYTES;
    r.values[0].v.buf.ptr = buf;
    r.values[0].v.buf.len = (uint32_t)len;
    uint8_t frame[2048];
    size_t fl;
    REQUIRE(sl_abi_encode(&r, frame, sizeof frame, &fl) == 0);
    sl_msg d;
    REQUIRE(sl_abi_decode(frame, fl, &d) == 0);
    CHECK_EQ(sl_abi_sig_open(d.values[0].v.buf.ptr, d.values[0].v.buf.len, &count, &pos), 0);
    CHECK_EQ(count, 3);
}

int main(void)
{
    for (unsigned i = 0; i < sizeof name255; i++)
        name255[i] = (uint8_t)('a' + i % 26);
    RUN(test_roundtrip_every_kind);
    RUN(test_golden_bytes);
    RUN(test_every_type);
    RUN(test_encode_invalid);
    RUN(test_encode_capacity);
    RUN(test_truncation);
    RUN(test_decode_errors);
    RUN(test_single_byte_corruption);
    RUN(test_header_corruption_detected);
    RUN(test_stack_order);
    RUN(test_stack_corruption);
    RUN(test_signatures);
    T_EXIT();
}

/* The architectural CPU state a snapshot carries (src/host/cpustate.h,
 * docs/snapshot-format.md §4): encode/decode round trips field by field and
 * byte by byte, the documented section offsets, every hostile-input rule of
 * the decoder (each malformed input rejected with its code, decoded from a
 * heap buffer of exactly its length so that the ASan build sees any read past
 * it), sl_cpu_state_add_xcomp's refusals, and — where amd64 guests run here —
 * the power-on state a real vCPU reports and its round trip through a reset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpustate.h"
#include "t.h"
#include "vcpu.h"

/* Section offsets of docs/snapshot-format.md §4 (header included). */
#define S_MAGIC 0x000
#define S_VERSION 0x004
#define S_RESERVED6 0x006
#define S_ARCH 0x007
#define S_PLEN 0x008
#define S_RESERVED12 0x00C
#define S_SEG 0x010 /* 8 x 24 bytes */
#define S_GDT 0x0D0
#define S_CR 0x0F0
#define S_DR 0x128
#define S_MSR 0x158
#define S_XBV 0x180
#define S_NX 0x188
#define S_LEGACY 0x190
#define S_RECORDS 0x390

static uint64_t rd64(const uint8_t *p, size_t off)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[off + (size_t)i];
    return v;
}

static uint32_t rd32(const uint8_t *p, size_t off)
{
    return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 | (uint32_t)p[off + 3] << 24;
}

static uint16_t rd16(const uint8_t *p, size_t off) { return (uint16_t)(p[off] | p[off + 1] << 8); }

static void wr64(uint8_t *p, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void wr16(uint8_t *p, size_t off, uint16_t v)
{
    p[off] = (uint8_t)v;
    p[off + 1] = (uint8_t)(v >> 8);
}

/* ---------------- states ---------------- */

/* Every field a distinct value; components 2 (256 bytes), 5 (64) and 7
 * (1024). Addresses are canonical (amd64) or 32-bit (i686) and EFER sets
 * only SCE, LME, LMA, NXE: decode refuses anything else (test_addresses). */
static void make_state(sl_cpu_state *s, unsigned arch, int with_components)
{
    memset(s, 0, sizeof *s);
    s->arch = arch;
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        s->seg[i].base = (arch == SL_ARCH_I686 ? 0x11000000ull : 0xFFFF811100000000ull) + 0x01010101ull * (i + 1);
        s->seg[i].limit = 0x22220000u + i;
        s->seg[i].selector = (uint16_t)(0x3300 + 8 * i);
        s->seg[i].flags = (uint16_t)(0x100 | (0x5A + 19 * i)) & 0x1FF;
        s->seg[i].type = (uint8_t)(3 + i);
    }
    s->gdt_base = arch == SL_ARCH_I686 ? 0x44441000ull : 0x0000444400001000ull;
    s->gdt_limit = 0x4FF7;
    s->idt_base = arch == SL_ARCH_I686 ? 0x55552000ull : 0xFFFFD55500002000ull;
    s->idt_limit = 0x5FF9;
    s->cr0 = 0x600000000000c001ull;
    s->cr2 = 0x6100000000000002ull;
    s->cr3 = 0x6200000000003000ull;
    s->cr4 = 0x6300000000000620ull;
    s->cr8 = 0x6400000000000005ull;
    s->efer = 0xd01ull;
    s->xcr0 = 0x66000000000000e7ull;
    for (unsigned i = 0; i < 4; i++)
        s->dr[i] = 0x7000000000000000ull + 0x1111ull * (i + 1);
    s->dr6 = 0x76000000ffff0ff0ull;
    s->dr7 = 0x7700000000000400ull;
    for (unsigned i = 0; i < SL_CPU_NMSR; i++)
        s->msr[i] = (arch == SL_ARCH_I686 ? 0x88000000ull : 0x0000788000000000ull) + 0x10101ull * (i + 1);
    s->xstate_bv = 3;
    for (unsigned i = 0; i < sizeof s->legacy; i++)
        s->legacy[i] = (uint8_t)(i * 7 + 1);
    wr16(s->legacy, 0, 0x037F);
    wr32(s->legacy, 24, 0x1F80);
    if (with_components) {
        static const struct {
            unsigned num;
            uint32_t size;
        } comps[] = {{2, 256}, {5, 64}, {7, 1024}};
        for (unsigned c = 0; c < 3; c++) {
            uint8_t bytes[1024];
            for (uint32_t k = 0; k < comps[c].size; k++)
                bytes[k] = (uint8_t)(k * 13 + comps[c].num * 31 + 1);
            if (!sl_cpu_state_add_xcomp(s, comps[c].num, bytes, comps[c].size))
                abort();
        }
    }
}

static void check_state_eq(const sl_cpu_state *a, const sl_cpu_state *b)
{
    CHECK_EQ(a->arch, b->arch);
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        CHECK_EQ(a->seg[i].base, b->seg[i].base);
        CHECK_EQ(a->seg[i].limit, b->seg[i].limit);
        CHECK_EQ(a->seg[i].selector, b->seg[i].selector);
        CHECK_EQ(a->seg[i].flags, b->seg[i].flags);
        CHECK_EQ(a->seg[i].type, b->seg[i].type);
    }
    CHECK_EQ(a->gdt_base, b->gdt_base);
    CHECK_EQ(a->gdt_limit, b->gdt_limit);
    CHECK_EQ(a->idt_base, b->idt_base);
    CHECK_EQ(a->idt_limit, b->idt_limit);
    CHECK_EQ(a->cr0, b->cr0);
    CHECK_EQ(a->cr2, b->cr2);
    CHECK_EQ(a->cr3, b->cr3);
    CHECK_EQ(a->cr4, b->cr4);
    CHECK_EQ(a->cr8, b->cr8);
    CHECK_EQ(a->efer, b->efer);
    CHECK_EQ(a->xcr0, b->xcr0);
    for (unsigned i = 0; i < 4; i++)
        CHECK_EQ(a->dr[i], b->dr[i]);
    CHECK_EQ(a->dr6, b->dr6);
    CHECK_EQ(a->dr7, b->dr7);
    for (unsigned i = 0; i < SL_CPU_NMSR; i++)
        CHECK_EQ(a->msr[i], b->msr[i]);
    CHECK_EQ(a->xstate_bv, b->xstate_bv);
    CHECK(memcmp(a->legacy, b->legacy, sizeof a->legacy) == 0);
    CHECK_EQ(a->xcomp_used, b->xcomp_used);
    for (unsigned i = 0; i < SL_CPU_XCOMP_LIMIT; i++) {
        CHECK_EQ(a->xcomp_size[i], b->xcomp_size[i]);
        if (a->xcomp_size[i] && a->xcomp_size[i] == b->xcomp_size[i]) {
            CHECK_EQ(a->xcomp_off[i], b->xcomp_off[i]);
            CHECK(a->xcomp_off[i] + a->xcomp_size[i] <= SL_CPU_XCOMP_BYTES);
            CHECK(memcmp(a->xcomp + a->xcomp_off[i], b->xcomp + b->xcomp_off[i], a->xcomp_size[i]) == 0);
        }
    }
}

/* Decodes a heap copy of exactly len bytes (so ASan catches any read past it). */
static int decode_exact(const uint8_t *buf, size_t len, unsigned arch, sl_cpu_state *s, sl_errbuf *e)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, buf, len);
    e->msg[0] = 0;
    int rc = sl_cpu_state_decode(copy, len, arch, s, e);
    free(copy);
    return rc;
}

static sl_cpu_state *new_state(void)
{
    sl_cpu_state *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    return s;
}

/* ---------------- round trip and offsets ---------------- */

static void roundtrip(unsigned arch, int with_components)
{
    sl_cpu_state *a = new_state(), *b = new_state();
    static uint8_t buf[SL_CPU_STATE_MAX], buf2[SL_CPU_STATE_MAX];
    size_t len = 0, len2 = 0;
    sl_errbuf e;
    make_state(a, arch, with_components);
    CHECK_EQ(sl_cpu_state_encode(a, buf, sizeof buf, &len, &e), 0);
    CHECK_EQ(len, S_RECORDS + (with_components ? 8 + 256 + 8 + 64 + 8 + 1024 : 0));
    CHECK_EQ(decode_exact(buf, len, arch, b, &e), 0);
    check_state_eq(a, b);
    CHECK_EQ(sl_cpu_state_encode(b, buf2, sizeof buf2, &len2, &e), 0);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);

    /* The documented offsets (section offsets, header included). */
    CHECK_EQ(rd32(buf, S_MAGIC), 0x52534c53u);
    CHECK(memcmp(buf, "SLSR", 4) == 0);
    CHECK_EQ(rd16(buf, S_VERSION), 3);
    CHECK_EQ(buf[S_RESERVED6], 0);
    CHECK_EQ(buf[S_ARCH], arch);
    CHECK_EQ(rd32(buf, S_PLEN), len - 16);
    CHECK_EQ(rd32(buf, S_RESERVED12), 0);
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        size_t r = S_SEG + 24 * i;
        CHECK_EQ(rd64(buf, r), a->seg[i].base);
        CHECK_EQ(rd32(buf, r + 8), a->seg[i].limit);
        CHECK_EQ(rd16(buf, r + 12), a->seg[i].selector);
        CHECK_EQ(rd16(buf, r + 14), a->seg[i].flags);
        CHECK_EQ(buf[r + 16], a->seg[i].type);
        for (unsigned k = 17; k < 24; k++)
            CHECK_EQ(buf[r + k], 0);
    }
    CHECK_EQ(rd64(buf, S_GDT), a->gdt_base);
    CHECK_EQ(rd64(buf, S_GDT + 8), a->gdt_limit);
    CHECK_EQ(rd64(buf, S_GDT + 16), a->idt_base);
    CHECK_EQ(rd64(buf, S_GDT + 24), a->idt_limit);
    const uint64_t cr[7] = {a->cr0, a->cr2, a->cr3, a->cr4, a->cr8, a->efer, a->xcr0};
    for (unsigned i = 0; i < 7; i++)
        CHECK_EQ(rd64(buf, S_CR + 8 * i), cr[i]);
    const uint64_t dr[6] = {a->dr[0], a->dr[1], a->dr[2], a->dr[3], a->dr6, a->dr7};
    for (unsigned i = 0; i < 6; i++)
        CHECK_EQ(rd64(buf, S_DR + 8 * i), dr[i]);
    for (unsigned i = 0; i < SL_CPU_NMSR; i++)
        CHECK_EQ(rd64(buf, S_MSR + 8 * i), a->msr[i]);
    CHECK_EQ(rd64(buf, S_XBV), a->xstate_bv);
    CHECK_EQ(rd64(buf, S_XBV), with_components ? 3u | 1u << 2 | 1u << 5 | 1u << 7 : 3u);
    CHECK_EQ(rd64(buf, S_NX), with_components ? 3 : 0);
    CHECK_EQ(rd16(buf, S_LEGACY), 0x037F);          /* FCW */
    CHECK_EQ(rd32(buf, S_LEGACY + 24), 0x1F80);     /* MXCSR */
    CHECK(memcmp(buf + S_LEGACY, a->legacy, 512) == 0);
    if (with_components) {
        size_t q = S_RECORDS;
        const unsigned nums[3] = {2, 5, 7};
        for (unsigned c = 0; c < 3; c++) {
            CHECK_EQ(rd32(buf, q), nums[c]);
            CHECK_EQ(rd32(buf, q + 4), a->xcomp_size[nums[c]]);
            CHECK(memcmp(buf + q + 8, a->xcomp + a->xcomp_off[nums[c]], a->xcomp_size[nums[c]]) == 0);
            q += 8 + a->xcomp_size[nums[c]];
        }
        CHECK_EQ(q, len);
    }

    /* A buffer one byte too small: SL_ERANGE, and nothing claimed written. */
    uint8_t *small = malloc(len - 1);
    REQUIRE(small);
    size_t l3 = 12345;
    CHECK_EQ(sl_cpu_state_encode(a, small, len - 1, &l3, &e), SL_ERANGE);
    CHECK_EQ(l3, 12345);
    free(small);
    free(a);
    free(b);
}

static void test_roundtrip(void)
{
    roundtrip(SL_ARCH_AMD64, 1);
    roundtrip(SL_ARCH_AMD64, 0);
    roundtrip(SL_ARCH_I686, 1);
    roundtrip(SL_ARCH_I686, 0);
}

/* Component sizes that are not multiples of 8 are padded with zeros, and the
 * largest state (every component, full capacity) encodes and decodes. */
static void test_padding_and_capacity(void)
{
    sl_cpu_state *a = new_state(), *b = new_state();
    static uint8_t buf[SL_CPU_STATE_MAX], buf2[SL_CPU_STATE_MAX];
    static uint8_t bytes[SL_CPU_XCOMP_BYTES];
    memset(bytes, 0xC3, sizeof bytes);
    size_t len, len2;
    sl_errbuf e;
    make_state(a, SL_ARCH_AMD64, 0);
    REQUIRE(sl_cpu_state_add_xcomp(a, 3, bytes, 5));
    REQUIRE(sl_cpu_state_add_xcomp(a, 9, bytes, 1));
    REQUIRE(sl_cpu_state_add_xcomp(a, 18, bytes, 17));
    REQUIRE(sl_cpu_state_encode(a, buf, sizeof buf, &len, &e) == 0);
    CHECK_EQ(len, S_RECORDS + (8 + 8) + (8 + 8) + (8 + 24));
    CHECK_EQ(rd32(buf, S_RECORDS), 3);
    CHECK_EQ(rd32(buf, S_RECORDS + 4), 5);
    for (unsigned k = 5; k < 8; k++)
        CHECK_EQ(buf[S_RECORDS + 8 + k], 0);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, b, &e), 0);
    check_state_eq(a, b);

    /* Every component 2..18, filling the capacity exactly. */
    make_state(a, SL_ARCH_AMD64, 0);
    uint32_t left = SL_CPU_XCOMP_BYTES;
    for (unsigned i = SL_CPU_XCOMP_FIRST; i < SL_CPU_XCOMP_LIMIT; i++) {
        uint32_t sz = i + 1 < SL_CPU_XCOMP_LIMIT ? 64 + i : left;
        for (uint32_t k = 0; k < sz; k++)
            bytes[k] = (uint8_t)(i * 17 + k);
        REQUIRE(sl_cpu_state_add_xcomp(a, i, bytes, sz));
        left -= sz;
    }
    CHECK_EQ(a->xcomp_used, SL_CPU_XCOMP_BYTES);
    CHECK_EQ(a->xstate_bv, (1u << SL_CPU_XCOMP_LIMIT) - 1);
    REQUIRE(sl_cpu_state_encode(a, buf, sizeof buf, &len, &e) == 0);
    CHECK(len <= SL_CPU_STATE_MAX);
    CHECK_EQ(rd64(buf, S_NX), SL_CPU_XCOMP_LIMIT - SL_CPU_XCOMP_FIRST);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, b, &e), 0);
    check_state_eq(a, b);
    REQUIRE(sl_cpu_state_encode(b, buf2, sizeof buf2, &len2, &e) == 0);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);

    /* Boundary values the decoder accepts. */
    make_state(a, SL_ARCH_AMD64, 1);
    a->seg[SL_SEG_CS].flags = 0x1FF;
    a->seg[SL_SEG_TR].type = 15;
    a->gdt_limit = 0xFFFF;
    a->idt_limit = 0xFFFF;
    REQUIRE(sl_cpu_state_encode(a, buf, sizeof buf, &len, &e) == 0);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, b, &e), 0);
    check_state_eq(a, b);
    free(a);
    free(b);
}

/* ---------------- hostile inputs ---------------- */

static int g_cases; /* hostile inputs tried */

/* Decodes buf[0..len) for arch and checks that it is rejected with `want`
 * and a message. */
static void expect_rc(const uint8_t *buf, size_t len, unsigned arch, int want, const char *what, sl_cpu_state *s)
{
    sl_errbuf e;
    int rc = decode_exact(buf, len, arch, s, &e);
    g_cases++;
    if (rc != want || !e.msg[0]) {
        printf("  %s (len %zu): rc %d, want %d, message '%s'\n", what, len, rc, want, e.msg);
        t_failed_now = 1;
    }
}

/* A valid encoding with components 2 (256), 5 (64), 7 (1024). */
static size_t valid(uint8_t *buf, unsigned arch, int with_components)
{
    sl_cpu_state *a = new_state();
    size_t len;
    sl_errbuf e;
    make_state(a, arch, with_components);
    if (sl_cpu_state_encode(a, buf, SL_CPU_STATE_MAX, &len, &e))
        abort();
    free(a);
    return len;
}

typedef struct rec {
    uint32_t num, size;
    uint32_t room; /* bytes written after the 8-byte head (0: pad8(size)) */
} rec;

/* The fixed part of a valid encoding, then raw component records (bytes 0x5A,
 * zero padding), XSTATE_BV bv and record count n; returns the length with the
 * payload length set to match. */
static size_t build(uint8_t *buf, uint64_t bv, uint64_t n, const rec *recs, unsigned nrec)
{
    valid(buf, SL_ARCH_AMD64, 0);
    size_t pos = S_RECORDS;
    for (unsigned k = 0; k < nrec; k++) {
        uint32_t room = recs[k].room ? recs[k].room : (recs[k].size + 7u) & ~7u;
        wr32(buf, pos, recs[k].num);
        wr32(buf, pos + 4, recs[k].size);
        memset(buf + pos + 8, 0, room);
        memset(buf + pos + 8, 0x5A, recs[k].size < room ? recs[k].size : room);
        pos += 8 + room;
    }
    wr64(buf, S_XBV, bv);
    wr64(buf, S_NX, n);
    wr32(buf, S_PLEN, (uint32_t)(pos - 16));
    return pos;
}

#define B(i) (1ull << (i))

static void test_truncation(void)
{
    static uint8_t buf[SL_CPU_STATE_MAX], cut[SL_CPU_STATE_MAX];
    sl_cpu_state *s = new_state();
    for (int comps = 0; comps <= 1; comps++) {
        size_t len = valid(buf, SL_ARCH_AMD64, comps);
        for (size_t k = 0; k < len; k++) {
            /* As cut: the payload length no longer matches. */
            expect_rc(buf, k, SL_ARCH_AMD64, SL_EFORMAT, "truncated", s);
            /* Cut with the payload length fixed up: the records must still not add up. */
            if (k >= 16) {
                memcpy(cut, buf, k);
                wr32(cut, S_PLEN, (uint32_t)(k - 16));
                expect_rc(cut, k, SL_ARCH_AMD64, SL_EFORMAT, "truncated, length fixed", s);
            }
        }
    }
    free(s);
}

static void test_header(void)
{
    static uint8_t ok[SL_CPU_STATE_MAX], buf[SL_CPU_STATE_MAX];
    sl_cpu_state *s = new_state();
    sl_errbuf e;
    size_t len = valid(ok, SL_ARCH_AMD64, 1);
    REQUIRE(decode_exact(ok, len, SL_ARCH_AMD64, s, &e) == 0);

    for (unsigned i = 0; i < 4; i++)
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(buf, ok, len);
            buf[S_MAGIC + i] ^= (uint8_t)(1u << bit);
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "bad magic", s);
        }

    const uint16_t versions[] = {0, 1, 2, 4, 0x103, 0xFFFF};
    for (unsigned i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        memcpy(buf, ok, len);
        wr16(buf, S_VERSION, versions[i]);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EVERSION, "other version", s);
        decode_exact(buf, len, SL_ARCH_AMD64, s, &e);
        char v[16];
        snprintf(v, sizeof v, "%u", versions[i]);
        if (!strstr(e.msg, v) || !strstr(e.msg, "3")) {
            printf("  version %u: message '%s' does not name both versions\n", versions[i], e.msg);
            t_failed_now = 1;
        }
    }

    /* Another architecture: the decoder's, or the one in the bytes. */
    expect_rc(ok, len, SL_ARCH_I686, SL_EFAMILY, "amd64 state read as i686", s);
    const uint8_t arches[] = {0, SL_ARCH_I686, 3, 0x81, 0xFF};
    for (unsigned i = 0; i < sizeof arches; i++) {
        memcpy(buf, ok, len);
        buf[S_ARCH] = arches[i];
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFAMILY, "other arch", s);
    }
    uint8_t i686[SL_CPU_STATE_MAX];
    size_t l686 = valid(i686, SL_ARCH_I686, 1);
    expect_rc(i686, l686, SL_ARCH_AMD64, SL_EFAMILY, "i686 state read as amd64", s);
    CHECK_EQ(decode_exact(i686, l686, SL_ARCH_I686, s, &e), 0);
    CHECK_EQ(s->arch, SL_ARCH_I686);

    /* Reserved header bytes. */
    const unsigned reserved[] = {S_RESERVED6, S_RESERVED12, S_RESERVED12 + 1, S_RESERVED12 + 2, S_RESERVED12 + 3};
    for (unsigned i = 0; i < 5; i++)
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(buf, ok, len);
            buf[reserved[i]] = (uint8_t)(1u << bit);
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "reserved header byte", s);
        }

    /* Payload length against the buffer. */
    const int64_t deltas[] = {-1, 1, -8, 8, -(int64_t)(len - 16), 0x10000, (int64_t)0xFFFFFFFFu - (int64_t)(len - 16)};
    for (unsigned i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        memcpy(buf, ok, len);
        wr32(buf, S_PLEN, (uint32_t)((int64_t)(len - 16) + deltas[i]));
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "payload length", s);
    }
    memcpy(buf, ok, len);
    buf[len] = 0;
    expect_rc(buf, len + 1, SL_ARCH_AMD64, SL_EFORMAT, "one byte past the payload", s);
    memset(buf + len, 0, 8);
    expect_rc(buf, len + 8, SL_ARCH_AMD64, SL_EFORMAT, "eight bytes past the payload", s);
    /* A payload shorter than the fixed part, consistent with the buffer. */
    memcpy(buf, ok, 16);
    wr32(buf, S_PLEN, 0);
    expect_rc(buf, 16, SL_ARCH_AMD64, SL_EFORMAT, "empty payload", s);
    memcpy(buf, ok, S_RECORDS - 8);
    wr32(buf, S_PLEN, S_RECORDS - 8 - 16);
    expect_rc(buf, S_RECORDS - 8, SL_ARCH_AMD64, SL_EFORMAT, "payload shorter than its fixed part", s);
    free(s);
}

static void test_fields(void)
{
    static uint8_t ok[SL_CPU_STATE_MAX], buf[SL_CPU_STATE_MAX];
    sl_cpu_state *s = new_state();
    size_t len = valid(ok, SL_ARCH_AMD64, 1);
    for (unsigned i = 0; i < SL_SEG_COUNT; i++) {
        size_t r = S_SEG + 24 * i;
        const uint16_t flags[] = {0x200, 0x201, 0x3FF, 0x400, 0x8000, 0xFFFF};
        for (unsigned k = 0; k < sizeof flags / sizeof flags[0]; k++) {
            memcpy(buf, ok, len);
            wr16(buf, r + 14, flags[k]);
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "segment flags above 0x1FF", s);
        }
        const uint8_t types[] = {16, 17, 0x80, 0xFF};
        for (unsigned k = 0; k < sizeof types; k++) {
            memcpy(buf, ok, len);
            buf[r + 16] = types[k];
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "segment type above 15", s);
        }
        for (unsigned k = 17; k < 24; k++) {
            memcpy(buf, ok, len);
            buf[r + k] = 0x01;
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "segment padding", s);
            buf[r + k] = 0x80;
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "segment padding", s);
        }
    }
    const uint64_t limits[] = {0x10000, 0x1FFFF, 0xFFFFFFFFull, 1ull << 32, 1ull << 63, ~0ull};
    for (unsigned k = 0; k < sizeof limits / sizeof limits[0]; k++)
        for (unsigned t = 0; t < 2; t++) {
            memcpy(buf, ok, len);
            wr64(buf, S_GDT + 8 + 16 * t, limits[k]);
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, t ? "IDT limit" : "GDT limit", s);
        }
    /* XSTATE_BV bits above 18, each alone on top of the valid value. */
    for (unsigned bit = SL_CPU_XCOMP_LIMIT; bit < 64; bit++) {
        memcpy(buf, ok, len);
        wr64(buf, S_XBV, rd64(ok, S_XBV) | B(bit));
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "XSTATE_BV bit above 18", s);
    }
    free(s);
}

static void test_records(void)
{
    static uint8_t buf[SL_CPU_STATE_MAX];
    sl_cpu_state *s = new_state();
    sl_errbuf e;
    size_t len;
    const uint64_t base = 3;

    /* The builder itself makes valid encodings. */
    rec ok3[] = {{2, 256, 0}, {5, 64, 0}, {7, 1024, 0}};
    len = build(buf, base | B(2) | B(5) | B(7), 3, ok3, 3);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, s, &e), 0);
    rec one[] = {{5, 13, 0}};
    len = build(buf, base | B(5), 1, one, 1);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, s, &e), 0);
    CHECK_EQ(s->xcomp_size[5], 13);

    /* Out of order, repeated. */
    rec swapped[] = {{5, 64, 0}, {2, 256, 0}};
    len = build(buf, base | B(2) | B(5), 2, swapped, 2);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "records out of order", s);
    rec swapped3[] = {{2, 256, 0}, {7, 64, 0}, {5, 64, 0}};
    len = build(buf, base | B(2) | B(5) | B(7), 3, swapped3, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "records out of order", s);
    rec twice[] = {{2, 8, 0}, {2, 8, 0}};
    len = build(buf, base | B(2), 2, twice, 2);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record repeated", s);
    rec twice2[] = {{2, 8, 0}, {6, 8, 0}, {6, 8, 0}};
    len = build(buf, base | B(2) | B(6), 3, twice2, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record repeated", s);

    /* Numbers below 2 (even with their XSTATE_BV bits set) and above 18. */
    const uint32_t bad_nums[] = {0, 1, 19, 20, 31, 32, 63, 64, 65, 0x80000000u, 0xFFFFFFFFu};
    for (unsigned k = 0; k < sizeof bad_nums / sizeof bad_nums[0]; k++) {
        rec r[] = {{bad_nums[k], 8, 0}};
        len = build(buf, base, 1, r, 1);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record number out of range", s);
        rec r2[] = {{2, 8, 0}, {bad_nums[k], 8, 0}};
        len = build(buf, base | B(2), 2, r2, 2);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "second record number out of range", s);
    }
    /* A number in range whose bit is not in XSTATE_BV. */
    for (uint32_t num = SL_CPU_XCOMP_FIRST; num < SL_CPU_XCOMP_LIMIT; num++) {
        rec r[] = {{num, 8, 0}};
        uint64_t other = num == 2 ? B(3) : B(2);
        len = build(buf, base | other, 1, r, 1);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record not in XSTATE_BV", s);
        len = build(buf, base, 1, r, 1);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record not in XSTATE_BV", s);
    }

    /* A bit in XSTATE_BV without its record. */
    for (unsigned bit = SL_CPU_XCOMP_FIRST; bit < SL_CPU_XCOMP_LIMIT; bit++) {
        len = build(buf, base | B(bit), 0, NULL, 0);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "XSTATE_BV bit without a record", s);
    }
    rec only2[] = {{2, 256, 0}};
    len = build(buf, base | B(2) | B(5), 1, only2, 1);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "XSTATE_BV bit without a record", s);
    len = build(buf, base | B(2) | B(18), 1, only2, 1);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "XSTATE_BV bit without a record", s);

    /* Size 0. */
    rec zero[] = {{2, 0, 8}};
    len = build(buf, base | B(2), 1, zero, 1);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record of size 0", s);
    rec zero2[] = {{2, 0, 0}};
    len = build(buf, base | B(2), 1, zero2, 1);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record of size 0", s);

    /* Size larger than what remains (the room written is smaller). */
    const uint32_t big[][2] = {{256, 248}, {257, 256}, {9, 8}, {1024, 8}, {0x7FFFFFFF, 16},
                               {0xFFFFFFF9u, 8}, {0xFFFFFFFFu, 8}, {SL_CPU_XCOMP_BYTES, 8}};
    for (unsigned k = 0; k < sizeof big / sizeof big[0]; k++) {
        rec r[] = {{2, big[k][0], big[k][1]}};
        len = build(buf, base | B(2), 1, r, 1);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "record larger than what remains", s);
        rec r2[] = {{2, 8, 0}, {3, big[k][0], big[k][1]}};
        len = build(buf, base | B(2) | B(3), 2, r2, 2);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "second record larger than what remains", s);
    }

    /* Sizes that add up past the component capacity (all bytes present). */
    rec fill[] = {{2, 8192, 0}, {3, 4096, 0}};
    len = build(buf, base | B(2) | B(3), 2, fill, 2);
    CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, s, &e), 0);
    CHECK_EQ(s->xcomp_used, SL_CPU_XCOMP_BYTES);
    rec over[] = {{2, 8192, 0}, {3, 4096, 0}, {4, 1, 0}};
    len = build(buf, base | B(2) | B(3) | B(4), 3, over, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "components past the capacity", s);
    rec over1[] = {{2, 8192, 0}, {3, 4097, 0}};
    len = build(buf, base | B(2) | B(3), 2, over1, 2);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "components past the capacity", s);
    rec single[] = {{18, SL_CPU_XCOMP_BYTES + 1, 0}};
    len = build(buf, base | B(18), 1, single, 1);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "one component past the capacity", s);

    /* Nonzero padding after a component (sizes 1..7 mod 8). */
    for (uint32_t size = 1; size < 8; size++)
        for (uint32_t k = size; k < 8; k++) {
            rec r[] = {{2, size, 0}, {4, 16, 0}};
            len = build(buf, base | B(2) | B(4), 2, r, 2);
            CHECK_EQ(decode_exact(buf, len, SL_ARCH_AMD64, s, &e), 0);
            buf[S_RECORDS + 8 + k] = 0x01;
            expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "nonzero padding after a component", s);
        }
    rec last[] = {{2, 8, 0}, {9, 3, 0}};
    len = build(buf, base | B(2) | B(9), 2, last, 2);
    buf[len - 1] = 0xFF;
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "nonzero padding after the last component", s);

    /* Record count against the records there. */
    const uint64_t counts[] = {4, 5, 1000, 1ull << 32, 1ull << 63, ~0ull};
    for (unsigned k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        len = build(buf, base | B(2) | B(5) | B(7), counts[k], ok3, 3);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "more records counted than there are", s);
        len = build(buf, base, counts[k], NULL, 0);
        expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "records counted, none there", s);
    }
    len = build(buf, base | B(2) | B(5) | B(7), 2, ok3, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "fewer records counted than there are", s);
    len = build(buf, base | B(2) | B(5), 2, ok3, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "fewer records counted than there are", s);
    len = build(buf, base | B(2) | B(5) | B(7), 0, ok3, 3);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "no records counted, three there", s);

    /* Trailing bytes after the last record, with the payload length covering them. */
    const unsigned extra[] = {1, 7, 8, 16, 24};
    for (unsigned k = 0; k < sizeof extra / sizeof extra[0]; k++) {
        len = build(buf, base | B(2) | B(5) | B(7), 3, ok3, 3);
        memset(buf + len, 0, extra[k]);
        wr32(buf, S_PLEN, (uint32_t)(len + extra[k] - 16));
        expect_rc(buf, len + extra[k], SL_ARCH_AMD64, SL_EFORMAT, "trailing bytes", s);
        len = build(buf, base, 0, NULL, 0);
        memset(buf + len, 0, extra[k]);
        wr32(buf, S_PLEN, (uint32_t)(len + extra[k] - 16));
        expect_rc(buf, len + extra[k], SL_ARCH_AMD64, SL_EFORMAT, "trailing bytes", s);
    }
    /* A whole extra, well-formed record the count and XSTATE_BV leave out. */
    rec four[] = {{2, 256, 0}, {5, 64, 0}, {7, 1024, 0}, {9, 8, 0}};
    len = build(buf, base | B(2) | B(5) | B(7), 3, four, 4);
    expect_rc(buf, len, SL_ARCH_AMD64, SL_EFORMAT, "a record after the last counted one", s);
    free(s);
    /* Every hostile input so far came through expect_rc (truncation, header, fields, records). */
    CHECK(g_cases > 2 * (S_RECORDS + 8 + 256 + 8 + 64 + 8 + 1024));
}

/* ---------------- sl_cpu_state_add_xcomp ---------------- */

static void check_unchanged(const sl_cpu_state *s, uint64_t bv, uint32_t used)
{
    CHECK_EQ(s->xstate_bv, bv);
    CHECK_EQ(s->xcomp_used, used);
}

static void test_add_xcomp(void)
{
    sl_cpu_state *s = new_state();
    static uint8_t bytes[SL_CPU_XCOMP_BYTES + 8];
    memset(bytes, 0x77, sizeof bytes);
    s->xstate_bv = 3;

    /* Numbers outside 2..18, size 0. */
    const unsigned bad[] = {0, 1, 19, 20, 63, 64, 1000, 0xFFFFFFFFu};
    for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK(!sl_cpu_state_add_xcomp(s, bad[k], bytes, 8));
        check_unchanged(s, 3, 0);
    }
    CHECK(!sl_cpu_state_add_xcomp(s, 2, bytes, 0));
    check_unchanged(s, 3, 0);
    CHECK(!sl_cpu_state_add_xcomp(s, 2, bytes, SL_CPU_XCOMP_BYTES + 1));
    CHECK(!sl_cpu_state_add_xcomp(s, 2, bytes, 0xFFFFFFFFu));
    check_unchanged(s, 3, 0);

    CHECK(sl_cpu_state_add_xcomp(s, 5, bytes, 64));
    check_unchanged(s, 3 | B(5), 64);
    CHECK_EQ(s->xcomp_off[5], 0);
    CHECK_EQ(s->xcomp_size[5], 64);
    /* Duplicate, out of order. */
    CHECK(!sl_cpu_state_add_xcomp(s, 5, bytes, 64));
    CHECK(!sl_cpu_state_add_xcomp(s, 5, bytes, 8));
    CHECK(!sl_cpu_state_add_xcomp(s, 2, bytes, 8));
    CHECK(!sl_cpu_state_add_xcomp(s, 4, bytes, 8));
    check_unchanged(s, 3 | B(5), 64);
    CHECK_EQ(s->xcomp_size[2], 0);
    CHECK_EQ(s->xcomp_size[4], 0);

    CHECK(sl_cpu_state_add_xcomp(s, 7, bytes, 1024));
    CHECK_EQ(s->xcomp_off[7], 64);
    CHECK(!sl_cpu_state_add_xcomp(s, 6, bytes, 8));
    check_unchanged(s, 3 | B(5) | B(7), 64 + 1024);

    /* Overflow: one byte more than is left, then exactly what is left. */
    uint32_t left = SL_CPU_XCOMP_BYTES - 64 - 1024;
    CHECK(!sl_cpu_state_add_xcomp(s, 9, bytes, left + 1));
    check_unchanged(s, 3 | B(5) | B(7), 64 + 1024);
    CHECK_EQ(s->xcomp_size[9], 0);
    CHECK(sl_cpu_state_add_xcomp(s, 9, bytes, left));
    check_unchanged(s, 3 | B(5) | B(7) | B(9), SL_CPU_XCOMP_BYTES);
    CHECK(!sl_cpu_state_add_xcomp(s, 18, bytes, 1));
    check_unchanged(s, 3 | B(5) | B(7) | B(9), SL_CPU_XCOMP_BYTES);
    CHECK(memcmp(s->xcomp, bytes, SL_CPU_XCOMP_BYTES) == 0);

    /* 18 is the last number accepted. */
    memset(s, 0, sizeof *s);
    CHECK(sl_cpu_state_add_xcomp(s, 18, bytes, 8));
    CHECK(!sl_cpu_state_add_xcomp(s, 17, bytes, 8));
    CHECK(!sl_cpu_state_add_xcomp(s, 18, bytes, 8));
    CHECK(!sl_cpu_state_add_xcomp(s, 19, bytes, 8));
    CHECK_EQ(s->xstate_bv, B(18));
    free(s);
}

/* ---------------- a real vCPU (amd64 under KVM or PVM) ---------------- */

static void test_vcpu_power_on(void)
{
    sl_errbuf e;
    sl_vcpu *v = NULL;
    static sl_sregs_blob blob, again, again2;
    sl_cpu_state *s = new_state(), *t = new_state();
    int rc = sl_vcpu_open(&v, SL_ARCH_AMD64, &e);
    if (rc)
        printf("  sl_vcpu_open: %d %s\n", rc, e.msg);
    REQUIRE(rc == 0);
    REQUIRE(sl_vcpu_reset(v, 0x1000, NULL, &e) == 0);
    memset(&blob, 0xEE, sizeof blob);
    REQUIRE(sl_vcpu_get_sregs(v, &blob, &e) == 0);
    CHECK_EQ(sl_sregs_blob_check(&blob, SL_ARCH_AMD64, &e), 0);
    CHECK_EQ(sl_sregs_blob_check(&blob, SL_ARCH_I686, &e), SL_EFAMILY);
    size_t len = sl_sregs_blob_len(&blob);
    CHECK(len >= S_RECORDS && len <= SL_SREGS_BLOB_SIZE);
    for (size_t i = len; i < sizeof blob.bytes; i++)
        if (blob.bytes[i]) {
            printf("  byte %zu past the encoding is 0x%02x\n", i, blob.bytes[i]);
            t_failed_now = 1;
            break;
        }
    REQUIRE(decode_exact(blob.bytes, len, SL_ARCH_AMD64, s, &e) == 0);
    CHECK_EQ(rd16(s->legacy, 0), 0x037F);   /* FCW */
    CHECK_EQ(rd32(s->legacy, 24), 0x1F80);  /* MXCSR */
    CHECK_EQ(s->xstate_bv & 3, 3);          /* x87 and SSE always written out */
    CHECK_EQ(s->cr3, 0x1000);
    CHECK(s->efer & 0x400);                 /* EFER.LMA: flat long mode */
    CHECK(s->seg[SL_SEG_CS].flags & SL_SEGF_L);
    CHECK(s->seg[SL_SEG_CS].flags & SL_SEGF_PRESENT);
    /* Every component at power-on is in its initial state, so none is written. */
    printf("  vCPU %s: CPU state of %zu bytes, XSTATE_BV 0x%" PRIx64 ", XCR0 0x%" PRIx64 "\n",
           sl_vcpu_backend_name(v), len, s->xstate_bv, s->xcr0);
    /* Encoding the decoded state gives the same bytes. */
    static uint8_t enc[SL_CPU_STATE_MAX];
    size_t elen;
    CHECK_EQ(sl_cpu_state_encode(s, enc, sizeof enc, &elen, &e), 0);
    CHECK(elen == len && memcmp(enc, blob.bytes, len) == 0);

    /* Reset from that blob, read it back: the same bytes. */
    REQUIRE(sl_vcpu_reset(v, 0x1000, &blob, &e) == 0);
    memset(&again, 0x11, sizeof again);
    REQUIRE(sl_vcpu_get_sregs(v, &again, &e) == 0);
    CHECK(memcmp(&blob, &again, sizeof blob) == 0);

    /* A state with other x87/SSE contents survives the same round trip. */
    *t = *s;
    wr16(t->legacy, 0, 0x027F);  /* FCW: 53-bit precision */
    wr32(t->legacy, 24, 0x9F80); /* MXCSR: flush to zero */
    for (unsigned i = 0; i < 256; i++)
        t->legacy[160 + i] = (uint8_t)(i * 3 + 1); /* XMM0..15 */
    static sl_sregs_blob mod;
    memset(&mod, 0, sizeof mod);
    REQUIRE(sl_cpu_state_encode(t, mod.bytes, sizeof mod.bytes, &elen, &e) == 0);
    REQUIRE(sl_vcpu_reset(v, 0x1000, &mod, &e) == 0);
    memset(&again2, 0x22, sizeof again2);
    REQUIRE(sl_vcpu_get_sregs(v, &again2, &e) == 0);
    sl_cpu_state *u = new_state();
    REQUIRE(decode_exact(again2.bytes, sl_sregs_blob_len(&again2), SL_ARCH_AMD64, u, &e) == 0);
    CHECK_EQ(rd16(u->legacy, 0), 0x027F);
    CHECK_EQ(rd32(u->legacy, 24), 0x9F80);
    CHECK(memcmp(u->legacy + 160, t->legacy + 160, 256) == 0);
    CHECK(memcmp(&mod, &again2, sizeof mod) == 0);

    /* And a reset without a blob goes back to the power-on bytes. */
    REQUIRE(sl_vcpu_reset(v, 0x1000, NULL, &e) == 0);
    REQUIRE(sl_vcpu_get_sregs(v, &again, &e) == 0);
    CHECK(memcmp(&blob, &again, sizeof blob) == 0);
    free(u);
    free(s);
    free(t);
    sl_vcpu_free(v);
}

/* Addresses the hypervisor loads as they are (PVM writes segment bases to
 * the host's MSRs on entry) and EFER bits sandlet never uses are refused
 * before they reach it: a hostile file's FS base must not be non-canonical. */
static int decode_with(unsigned arch, void (*edit)(sl_cpu_state *, uint64_t), uint64_t v)
{
    static sl_cpu_state st, out;
    static uint8_t buf[SL_CPU_STATE_MAX];
    size_t len;
    sl_errbuf e;
    make_state(&st, arch, 0);
    edit(&st, v);
    if (sl_cpu_state_encode(&st, buf, sizeof buf, &len, &e))
        return 99;
    return sl_cpu_state_decode(buf, len, arch, &out, &e);
}
static void ed_fs(sl_cpu_state *s, uint64_t v) { s->seg[SL_SEG_FS].base = v; }
static void ed_gs(sl_cpu_state *s, uint64_t v) { s->seg[SL_SEG_GS].base = v; }
static void ed_tr(sl_cpu_state *s, uint64_t v) { s->seg[SL_SEG_TR].base = v; }
static void ed_gdt(sl_cpu_state *s, uint64_t v) { s->gdt_base = v; }
static void ed_idt(sl_cpu_state *s, uint64_t v) { s->idt_base = v; }
static void ed_kgs(sl_cpu_state *s, uint64_t v) { s->msr[0] = v; }
static void ed_lstar(sl_cpu_state *s, uint64_t v) { s->msr[2] = v; }
static void ed_cstar(sl_cpu_state *s, uint64_t v) { s->msr[3] = v; }
static void ed_efer(sl_cpu_state *s, uint64_t v) { s->efer = v; }

static void test_addresses(void)
{
    void (*eds[])(sl_cpu_state *, uint64_t) = {ed_fs, ed_gs, ed_tr, ed_gdt, ed_idt, ed_kgs, ed_lstar, ed_cstar};
    for (unsigned i = 0; i < sizeof eds / sizeof eds[0]; i++) {
        CHECK_EQ(decode_with(SL_ARCH_AMD64, eds[i], 0x00007FFFFFFFF000ull), 0);
        CHECK_EQ(decode_with(SL_ARCH_AMD64, eds[i], 0xFFFF800000000000ull), 0);
        CHECK_EQ(decode_with(SL_ARCH_AMD64, eds[i], 0x0000800000000000ull), SL_EFORMAT);
        CHECK_EQ(decode_with(SL_ARCH_AMD64, eds[i], 0x8000000000000000ull), SL_EFORMAT);
        CHECK_EQ(decode_with(SL_ARCH_AMD64, eds[i], 0xFFFF7FFFFFFFFFFFull), SL_EFORMAT);
        CHECK_EQ(decode_with(SL_ARCH_I686, eds[i], 0xFFFFFFFFull), 0);
        CHECK_EQ(decode_with(SL_ARCH_I686, eds[i], 0x100000000ull), SL_EFORMAT);
    }
    CHECK_EQ(decode_with(SL_ARCH_AMD64, ed_efer, 0xD01), 0);
    for (unsigned bit = 0; bit < 64; bit++)
        if (bit != 0 && bit != 8 && bit != 10 && bit != 11)
            CHECK_EQ(decode_with(SL_ARCH_AMD64, ed_efer, 0xD01 | 1ull << bit), SL_EFORMAT);
}

int main(void)
{
    RUN(test_roundtrip);
    RUN(test_padding_and_capacity);
    RUN(test_truncation);
    RUN(test_header);
    RUN(test_fields);
    RUN(test_records);
    RUN(test_add_xcomp);
    RUN(test_addresses);
    if (strcmp(t_backend(T_AMD64), "lab") == 0) {
        char why[256] = "";
        sl_backend_probe(SL_ARCH_AMD64, why, sizeof why);
        printf("  test_vcpu_power_on not run here: amd64 guests run in the KVM lab (%s)\n", why);
    }
    RUN_ARCH(T_AMD64, test_vcpu_power_on);
    T_EXIT();
}

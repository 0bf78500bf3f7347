/* A snapshot carries the whole architectural state the guest can set, and a
 * restore puts it back exactly (issue 9, fault 1: machine state at restore): the cpustate guest
 * (guests/cpustate.c; cpustate for x86-64, cpustate32 for i686) sets MXCSR,
 * the x87 control word, an XMM register, the upper half of a YMM register
 * (x86-64 with AVX) and the GS base (x86-64) in sandlet_main. For each
 * register class, on each architecture:
 *   a. calls on a fresh sandbox, before any snapshot or restore, read the
 *      values init set (and keep reading them: a call does not reset them);
 *   b. snapshot S after init, change the state with a setter, read the new
 *      value, restore S: the init value again (twice);
 *   c. change it, snapshot S2, restore S: the init value; restore S2: the
 *      changed value; and S again;
 *   d. new sandboxes from S and S2, in memory and saved to a file and loaded
 *      back: the init value and the changed value.
 * MXCSR also checks what it governs: with init's flush-to-zero and
 * denormals-are-zero, Mul(1e-310, 1.0) (SSE2 mulsd in the guest) is 0; with
 * the changed value (neither) it is 1e-310. Those checks compare MXCSR
 * without its exception flags (Mul sets some); mxcsr_flags_test checks that
 * the flags, too, come back exactly.
 *
 * RUN_ARCH: the x86-64 tests run natively (KVM or PVM), the i686 ones on
 * hardware KVM, so in the KVM lab on PVM hosts. Guests come from
 * $SANDLET_GUESTS (default build/guests); a missing guest fails the tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandlet.h"
#include "t.h"
#include "../common/e2e.h"

/* What guests/cpustate.c sets in sandlet_main, and the power-on values a
 * reset vCPU has (what a restore that loses the state shows). */
#define INIT_MXCSR 0xFFC0u /* FZ, DAZ, round toward zero, all masked */
#define INIT_FCW 0x0F7Fu   /* round toward zero, 64-bit precision, all masked */
#define INIT_XMM 0x0123456789ABCDEFull
#define INIT_YMM_HIGH 0xFEDCBA9876543210ull
#define INIT_GS_BASE 0x12345000ull
#define CPUSTATE_NO_AVX 0x4E4F2D4156582121ull
#define RESET_MXCSR 0x1F80u
#define RESET_FCW 0x037Fu

/* A register class: how to read and change it, the value init sets and the
 * value the test changes it to (distinct from init and from the reset value). */
typedef struct cls {
    const char *what;
    const char *get, *set;
    int type; /* SL_TYPE_U32 or SL_TYPE_U64 */
    uint64_t init, changed, reset;
    uint64_t mask; /* the bits compared (MXCSR: not the exception flags) */
} cls;

static const cls C_MXCSR = {"MXCSR", "Mxcsr", "SetMxcsr", SL_TYPE_U32, INIT_MXCSR,
                            0x3F80u /* round down, no FZ/DAZ */, RESET_MXCSR, ~0x3Full};
static const cls C_FCW = {"x87 FCW", "Fcw", "SetFcw", SL_TYPE_U32, INIT_FCW,
                          0x027Fu /* nearest, 53-bit precision */, RESET_FCW, ~0ull};
static const cls C_XMM = {"XMM low 64", "Xmm", "SetXmm", SL_TYPE_U64, INIT_XMM, 0x1122334455667788ull, 0, ~0ull};
static const cls C_YMM = {"YMM bits 128..191", "YmmHigh", "SetYmmHigh", SL_TYPE_U64, INIT_YMM_HIGH,
                          0x8877665544332211ull, 0, ~0ull};
static const cls C_GS = {"GS base", "GsBase", "SetGsBase", SL_TYPE_U64, INIT_GS_BASE, 0x23456000ull, 0, ~0ull};

/* ------------------------------------------------------------------ helpers */

static sl_sandbox *open_guest(const char *guest)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_file(&sb, guest_path(guest), NULL, err, sizeof err);
    if (rc) {
        printf("  cannot create a sandbox from %s: %s: %s\n", guest_path(guest), sl_strerror(rc), err);
        return NULL;
    }
    if ((rc = sl_sandbox_init(sb))) {
        printf("  init of %s: %s: %s\n", guest, sl_strerror(rc), sl_sandbox_errmsg(sb));
        sl_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

static sl_sandbox *from_snapshot(sl_snapshot *s, const char *what)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    int rc = sl_sandbox_new_from_snapshot(&sb, s, err, sizeof err);
    if (rc) {
        printf("  new_from_snapshot (%s): %s: %s\n", what, sl_strerror(rc), err);
        return NULL;
    }
    return sb;
}

/* Reads the class's value; UINT64_MAX - 1 (and a message) when the call fails. */
#define READ_FAILED (UINT64_MAX - 1)
static uint64_t read_cls(sl_sandbox *sb, const cls *c)
{
    sl_value r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, c->get, NULL, 0, &r);
    if (rc || r.type != c->type) {
        printf("  %s(): %s (type %d): %s\n", c->get, sl_strerror(rc), r.type, sl_sandbox_errmsg(sb));
        return READ_FAILED;
    }
    return c->type == SL_TYPE_U32 ? r.v.u32 : r.v.u64;
}

static int write_cls(sl_sandbox *sb, const cls *c, uint64_t v)
{
    sl_value a = {.type = c->type}, r;
    if (c->type == SL_TYPE_U32)
        a.v.u32 = (uint32_t)v;
    else
        a.v.u64 = v;
    int rc = sl_sandbox_call(sb, c->set, &a, 1, &r);
    if (rc)
        printf("  %s(0x%llx): %s: %s\n", c->set, (unsigned long long)v, sl_strerror(rc), sl_sandbox_errmsg(sb));
    return rc;
}

/* Mul(a, b), or NaN (and a message) when the call fails. */
static double mul(sl_sandbox *sb, double a, double b)
{
    sl_value args[2] = {{.type = SL_TYPE_F64, .v.f64 = a}, {.type = SL_TYPE_F64, .v.f64 = b}}, r;
    memset(&r, 0, sizeof r);
    int rc = sl_sandbox_call(sb, "Mul", args, 2, &r);
    if (rc || r.type != SL_TYPE_F64) {
        printf("  Mul: %s (type %d): %s\n", sl_strerror(rc), r.type, sl_sandbox_errmsg(sb));
        return __builtin_nan("");
    }
    return r.v.f64;
}

static const char *name_of(const cls *c, uint64_t v)
{
    if (v == READ_FAILED)
        return " (the call failed)";
    v &= c->mask;
    if (v == c->init)
        return " (init's value)";
    if (v == c->changed)
        return " (the changed value)";
    if (v == c->reset)
        return " (the power-on value)";
    return "";
}

/* The class reads `want` (the bits of c->mask), at the step `where`. For
 * MXCSR, Mul then behaves accordingly. */
static void expect(sl_sandbox *sb, const cls *c, uint64_t want, const char *where)
{
    uint64_t got = read_cls(sb, c);
    if (got == READ_FAILED || (got & c->mask) != want) {
        printf("  %s %s: %s reads 0x%llx%s, want 0x%llx%s\n", c->what, where, c->get, (unsigned long long)got,
               name_of(c, got), (unsigned long long)want, name_of(c, want));
        t_failed_now = 1;
    }
    if (c == &C_MXCSR && (want == INIT_MXCSR || want == C_MXCSR.changed)) {
        /* 1e-310 is a denormal: DAZ reads it as 0; without DAZ and FZ the
         * product is exact. */
        double in = 1e-310, p = mul(sb, in, 1.0);
        double w = want == INIT_MXCSR ? 0.0 : in;
        if (memcmp(&p, &w, sizeof p) != 0) {
            printf("  %s %s: Mul(1e-310, 1.0) = %g, want %g (MXCSR 0x%llx)\n", c->what, where, p, w,
                   (unsigned long long)want);
            t_failed_now = 1;
        }
    }
}

/* Writes the snapshot to a file in a new temporary directory and loads it
 * back; the file and directory are removed (the loaded snapshot maps the
 * file, which stays valid after the unlink). NULL on failure. */
static sl_snapshot *via_file(sl_snapshot *s)
{
    char dir[] = "/tmp/sandlet-cpustate-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("  mkdtemp");
        return NULL;
    }
    char path[sizeof dir + 32], err[256] = "";
    snprintf(path, sizeof path, "%s/s.snap", dir);
    sl_snapshot *l = NULL;
    int rc = sl_snapshot_save(s, path, err, sizeof err);
    if (rc)
        printf("  sl_snapshot_save: %s: %s\n", sl_strerror(rc), err);
    else if ((rc = sl_snapshot_load(&l, path, err, sizeof err)))
        printf("  sl_snapshot_load: %s: %s\n", sl_strerror(rc), err);
    unlink(path);
    rmdir(dir);
    return rc ? NULL : l;
}

/* A new sandbox from `s` (in memory, then through a file) reads `want`. */
static void expect_new(sl_snapshot *s, const cls *c, uint64_t want, const char *which)
{
    char where[128];
    snprintf(where, sizeof where, "in a new sandbox from %s in memory", which);
    sl_sandbox *nb = from_snapshot(s, where);
    CHECK(nb != NULL);
    if (nb) {
        expect(nb, c, want, where);
        sl_sandbox_free(nb);
    }
    snprintf(where, sizeof where, "in a new sandbox from %s saved and loaded", which);
    sl_snapshot *l = via_file(s);
    CHECK(l != NULL);
    if (!l)
        return;
    nb = from_snapshot(l, where);
    CHECK(nb != NULL);
    if (nb) {
        expect(nb, c, want, where);
        sl_sandbox_free(nb);
    }
    sl_snapshot_free(l);
}

/* ---------------------------------------------------------------- the tests */

static void state_test(const char *guest, const cls *c)
{
    /* a. before any snapshot or restore */
    sl_sandbox *sb = open_guest(guest);
    REQUIRE(sb != NULL);
    expect(sb, c, c->init, "right after init");
    expect(sb, c, c->init, "on the next call");
    sl_sandbox_free(sb);

    /* b. S after init; change; restore S */
    sb = open_guest(guest);
    REQUIRE(sb != NULL);
    sl_snapshot *s = NULL, *s2 = NULL;
    int rc = sl_sandbox_snapshot(sb, &s);
    if (rc)
        printf("  snapshot: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
    if (rc || (rc = write_cls(sb, c, c->changed))) {
        sl_sandbox_free(sb);
        REQUIRE(0);
    }
    expect(sb, c, c->changed, "after the setter");
    expect(sb, c, c->changed, "on the call after that");
    rc = sl_sandbox_restore(sb, s);
    if (rc)
        printf("  restore S: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
    CHECK_EQ(rc, 0);
    expect(sb, c, c->init, "after restoring S (taken after init)");
    expect(sb, c, c->init, "on the next call after restoring S");

    /* c. change, S2; S gives init's value, S2 the changed one */
    if ((rc = write_cls(sb, c, c->changed)) == 0 && (rc = sl_sandbox_snapshot(sb, &s2)))
        printf("  snapshot S2: %s: %s\n", sl_strerror(rc), sl_sandbox_errmsg(sb));
    if (rc) {
        sl_snapshot_free(s);
        sl_sandbox_free(sb);
        REQUIRE(0);
    }
    expect(sb, c, c->changed, "right after taking S2");
    CHECK_EQ(sl_sandbox_restore(sb, s), 0);
    expect(sb, c, c->init, "after restoring S (S2 taken since)");
    CHECK_EQ(sl_sandbox_restore(sb, s2), 0);
    expect(sb, c, c->changed, "after restoring S2 (taken with the changed value)");
    CHECK_EQ(sl_sandbox_restore(sb, s), 0);
    CHECK_EQ(sl_sandbox_restore(sb, s2), 0); /* back to back, no call between */
    expect(sb, c, c->changed, "after restoring S then S2 with no call between");
    CHECK_EQ(sl_sandbox_restore(sb, s), 0);
    expect(sb, c, c->init, "after restoring S again");
    sl_sandbox_free(sb);

    /* d. new sandboxes from S and S2, in memory and through files */
    expect_new(s, c, c->init, "S");
    expect_new(s2, c, c->changed, "S2");
    sl_snapshot_free(s);
    sl_snapshot_free(s2);
}

static void mxcsr_test(const char *guest) { state_test(guest, &C_MXCSR); }
static void fcw_test(const char *guest) { state_test(guest, &C_FCW); }
static void xmm_test(const char *guest) { state_test(guest, &C_XMM); }
static void gs_base_test(const char *guest) { state_test(guest, &C_GS); }

/* Only where the guest has AVX (CPUID and XCR0 as it sees them). */
static void ymm_test(const char *guest)
{
    sl_sandbox *sb = open_guest(guest);
    REQUIRE(sb != NULL);
    uint64_t v = read_cls(sb, &C_YMM);
    sl_sandbox_free(sb);
    REQUIRE(v != READ_FAILED);
    if (v == CPUSTATE_NO_AVX) {
        printf("  the guest has no AVX here (CPUID.OSXSAVE/AVX or XCR0): nothing to check\n");
        return;
    }
    state_test(guest, &C_YMM);
}

/* The exception flags are part of MXCSR: after Mul raised some (its result is
 * denormal without FZ, or inexact), a snapshot carries them and a restore
 * puts them back. */
static void mxcsr_flags_test(const char *guest)
{
    sl_sandbox *sb = open_guest(guest);
    REQUIRE(sb != NULL);
    if (write_cls(sb, &C_MXCSR, C_MXCSR.changed)) {
        sl_sandbox_free(sb);
        REQUIRE(0);
    }
    double p = mul(sb, 1e-310, 1.0 / 3);
    CHECK(p != 0.0);
    uint64_t flags = read_cls(sb, &C_MXCSR);
    printf("  MXCSR after Mul(1e-310, 1/3) without FZ/DAZ: 0x%llx\n", (unsigned long long)flags);
    CHECK((flags & ~0x3Full) == C_MXCSR.changed);
    CHECK((flags & 0x3Full) != 0);
    sl_snapshot *s = NULL;
    if (sl_sandbox_snapshot(sb, &s)) {
        sl_sandbox_free(sb);
        REQUIRE(0);
    }
    CHECK_EQ(write_cls(sb, &C_MXCSR, INIT_MXCSR), 0);
    CHECK_EQ(read_cls(sb, &C_MXCSR), INIT_MXCSR);
    CHECK_EQ(sl_sandbox_restore(sb, s), 0);
    uint64_t back = read_cls(sb, &C_MXCSR);
    if (back != flags)
        printf("  MXCSR after restoring: 0x%llx%s, want 0x%llx\n", (unsigned long long)back,
               name_of(&C_MXCSR, back), (unsigned long long)flags);
    CHECK_EQ(back, flags);
    sl_sandbox_free(sb);
    sl_sandbox *nb = from_snapshot(s, "S with flags");
    CHECK(nb != NULL);
    if (nb) {
        CHECK_EQ(read_cls(nb, &C_MXCSR), flags);
        sl_sandbox_free(nb);
    }
    sl_snapshot_free(s);
}

#define BOTH(fn)                                                                                             \
    static void test_##fn##_cpustate(void) { fn("cpustate"); }                                              \
    static void test_##fn##_cpustate32(void) { fn("cpustate32"); }

BOTH(mxcsr_test)
BOTH(mxcsr_flags_test)
BOTH(fcw_test)
BOTH(xmm_test)
static void test_ymm_test_cpustate(void) { ymm_test("cpustate"); }
static void test_gs_base_test_cpustate(void) { gs_base_test("cpustate"); }

int main(void)
{
#define BOTH_RUN(fn)                                                                                         \
    RUN_ARCH(T_AMD64, test_##fn##_cpustate);                                                                 \
    RUN_ARCH(T_I686, test_##fn##_cpustate32);
    BOTH_RUN(mxcsr_test)
    BOTH_RUN(mxcsr_flags_test)
    BOTH_RUN(fcw_test)
    BOTH_RUN(xmm_test)
    RUN_ARCH(T_AMD64, test_ymm_test_cpustate);
    RUN_ARCH(T_AMD64, test_gs_base_test_cpustate);
    T_EXIT();
}

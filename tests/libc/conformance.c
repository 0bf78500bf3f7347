/*
 * C library conformance program: one ordinary C11 program, built twice from
 * this source, as a musl guest (build/guests/libc_conf, libc_conf32: run in
 * the sandbox by `sandlet run`) and with the host's glibc as the reference
 * (build/tests/libc/conformance_glibc{,32}). tests/libc/compare.c compares
 * the two outputs; mk/libc-tests.mk builds everything; tests/e2e/libc.sh runs
 * it.
 *
 *   conformance SECTION [-v]
 *
 * SECTION is "all", "list" (prints the group names), a group name
 * ("printf.int") or a group prefix ("printf", "math"). -v prints every
 * checked value instead of the per-check-line checksums (for finding which
 * value differs: run both builds with -v and diff).
 *
 * Deterministic: every group seeds its own PRNG from its name, so one group
 * prints the same alone as within "all". Output, one group after the other:
 *
 *   GROUP <name>
 *   <lines>
 *   DONE
 *
 * Line kinds, as tests/libc/compare.c reads them:
 *   M <name> <d|f><tol> <v>...   <math.h> results (%.17g double, %.9g float,
 *                                NaN as "nan"): equal within <tol> ulp of the
 *                                type, zero signs distinct by one ulp
 *   L <key> <value> -- <reason>  libc-specific: the key must match, the value
 *                                may differ, the reason says why
 *   anything else                exact
 * Most lines are checksums (FNV-1a) over hundreds of formatted values; -v
 * shows the values.
 *
 * Where glibc (2.36) and musl (1.2.3) differ, found by running both natively
 * on x86-64 and i386, and how each difference is handled:
 *   %p of a null pointer: glibc "(nil)", musl "0" (implementation-defined).
 *     Exact line: the output is one of the two; L line p-null: which.
 *   %a/%A of subnormal doubles: glibc 0x0.xxxp-1022, musl normalised
 *     0x1.xxxp-10xx (both valid). Checksummed apart on an L line; an exact
 *     line checks that each full-precision %a/%A reads back (strtod) to the
 *     same double. The snprintf checks keep subnormals away from %a.
 *   %La/%LA of long doubles: glibc puts 4 bits before the point (0x8p-3),
 *     musl 1 (0x1p+0). Same treatment (L lines, exact read-back line).
 *   strtod/strtof/strtold/strtol... errno when no conversion is performed:
 *     musl sets EINVAL (POSIX allows it), glibc leaves errno alone. Printed as
 *     "0-or-EINVAL".
 *   strtod-family errno for results at or below the smallest normal: C makes
 *     ERANGE on underflow implementation-defined; glibc sets it for every
 *     inexact tiny result, musl only for some. Printed as "0-or-ERANGE";
 *     overflow must be ERANGE and is printed as is.
 *   strtod("-nan"): glibc returns a negative NaN, musl a positive one (C says
 *     the result is negated). NaN results print as a class; L line for the
 *     sign.
 *   strtod of a hexadecimal string that rounds or scales past DBL_MAX
 *     ("0x1p1024"): musl returns inf but leaves errno 0 (a musl bug: C
 *     requires ERANGE; its strtof and strtold are right). L lines.
 *   strtol with an invalid base: glibc leaves *endptr as it was, musl stores
 *     nptr; endptr is set to nptr before the call, so both print "nptr".
 *   realloc(p, 0): glibc frees and returns NULL, musl returns a new block
 *     (implementation-defined). L line.
 *   fmin/fmax of +0 and -0: glibc's i386 fmin(0, -0) is +0, musl's -0
 *     (C leaves the zero's sign open): printed as +0.
 *   <math.h> results differ by up to 1 ulp in general, up to 2 for cbrt
 *     (glibc's cbrt is documented at 4 ulp) and up to 5 for tgamma (glibc
 *     documents 9): the M lines' tolerances (2, 4, 10) leave some margin.
 * Not printed: strerror texts, gmtime's %Z ("GMT" / "UTC"), sizeof(time_t)
 * (32 bits in glibc's i386 ABI, 64 in musl's: the fixed timestamps stay in
 * 32-bit range), max_align_t's alignment (the malloc check uses each libc's
 * own). NaN output of printf ("nan", "-nan", payloads ignored) is the same in
 * both and is checked raw.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static int verbose;

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t rndn(uint32_t n) /* 0 .. n-1 (n > 0) */
{
    return (uint32_t)(rnd() % n);
}

static double rnd_unit(void) /* [0, 1) */
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

static double rnd_range(double lo, double hi)
{
    return lo + (hi - lo) * rnd_unit();
}

#define FNV_OFF 0xcbf29ce484222325ULL

typedef struct {
    uint64_t h;
    unsigned long n;
} acc;

static void acc_init(acc *a)
{
    a->h = FNV_OFF;
    a->n = 0;
}

static void acc_bytes(acc *a, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        a->h ^= b[i];
        a->h *= 0x100000001b3ULL;
    }
}

static void acc_u64(acc *a, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    acc_bytes(a, b, 8);
}

static void acc_str(acc *a, const char *s)
{
    acc_bytes(a, s, strlen(s) + 1);
}

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* x87 80-bit long double (x86-64 and i386 alike): mantissa with explicit
 * integer bit, then sign and 15-bit exponent. */
static long double ld_make(int neg, unsigned exp, uint64_t mant)
{
    unsigned char b[sizeof(long double)];
    memset(b, 0, sizeof b);
    memcpy(b, &mant, 8);
    uint16_t se = (uint16_t)((neg ? 0x8000u : 0) | (exp & 0x7fffu));
    memcpy(b + 8, &se, 2);
    long double x;
    memcpy(&x, b, sizeof x);
    return x;
}

static void ld_split(long double x, uint16_t *se, uint64_t *mant)
{
    unsigned char b[sizeof(long double)];
    memcpy(b, &x, sizeof b);
    memcpy(mant, b, 8);
    memcpy(se, b + 8, 2);
}

/* Printable form of a byte string for verbose lines. */
static const char *esc(const char *s, size_t n)
{
    static char buf[4][2048];
    static int k;
    char *o = buf[k++ & 3];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < sizeof buf[0]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x21 && c < 0x7f && c != '\\')
            o[j++] = (char)c;
        else
            j += (size_t)snprintf(o + j, 5, "\\x%02x", c);
    }
    o[j] = 0;
    return o;
}

static void acc_line(const char *tag, const acc *a)
{
    printf("%s n=%lu h=%016" PRIx64 "\n", tag, a->n, a->h);
}

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case ERANGE: return "ERANGE";
    case EINVAL: return "EINVAL";
    case EDOM: return "EDOM";
    case ENOMEM: return "ENOMEM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    default: return "other";
    }
}

/* ------------------------------------------------------------- value pools */

static const double special_d[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 0.125, 0.05, 0.1, 9.5, 99.5, 999.9999999,
    1e23, 1e22, 8.5e-5, 123456789.0, 5e-324, 2.2250738585072009e-308, 2.2250738585072014e-308,
    1.7976931348623157e308, 4503599627370496.5, 9007199254740993.0, 0.3, 2.0 / 3.0,
    HUGE_VAL, -HUGE_VAL, NAN, -NAN, 1e-5, 1e15, 1e16, 1e17, 0.000123456, 1e100, 1e-100,
};
#define NSPECIAL_D (sizeof special_d / sizeof special_d[0])

/* A double from a mix of distributions: raw bit patterns (NaNs with payloads,
 * infinities, subnormals included), subnormals, moderate magnitudes,
 * short decimals (rounding ties), integers, the special table. */
static double rnd_double(void)
{
    switch (rndn(8)) {
    case 0:
    case 1:
        return bitsd(rnd());
    case 2: { /* subnormal */
        uint64_t sign = rnd() & 0x8000000000000000ULL;
        unsigned sh = 12 + rndn(52);
        return bitsd(sign | (rnd() >> sh));
    }
    case 3: { /* moderate */
        int e = (int)rndn(90) - 45;
        double m = (double)(rnd() >> 11);
        return ldexp(m, e - 53) * (rnd() & 1 ? -1 : 1);
    }
    case 4: { /* short decimal: k / 10^j */
        double p = 1;
        for (unsigned j = rndn(6); j; j--)
            p *= 10;
        return (double)((int64_t)(rnd() % 2000001) - 1000000) / p;
    }
    case 5: { /* integers and halves */
        double k = (double)((int64_t)(rnd() % 200001) - 100000);
        return k / (rnd() & 1 ? 2 : 1);
    }
    case 6: { /* NaN with payload, or infinity */
        uint64_t sign = rnd() & 0x8000000000000000ULL;
        return bitsd(sign | 0x7ff0000000000000ULL | (rnd() & 1 ? rnd() >> 12 : 0));
    }
    default:
        return special_d[rndn(NSPECIAL_D)];
    }
}

static float rnd_float(void)
{
    switch (rndn(6)) {
    case 0:
    case 1:
        return bitsf((uint32_t)rnd());
    case 2: { /* subnormal */
        uint32_t sign = (uint32_t)(rnd() & 0x80000000u);
        unsigned sh = 41 + rndn(23);
        return bitsf(sign | (uint32_t)(rnd() >> sh));
    }
    case 3: { /* moderate */
        double m = (double)(rnd() >> 40);
        return (float)ldexp(m, (int)rndn(60) - 30 - 24);
    }
    case 4:
        return (float)((int32_t)(rnd() % 20001) - 10000) / 8.0f;
    default:
        return (float)special_d[rndn(NSPECIAL_D)];
    }
}

/* A valid (canonical) x87 long double: the explicit integer bit set exactly
 * when the exponent is non-zero. maxexp limits the unbiased exponent (for %Lf,
 * whose output grows with it). */
static long double rnd_ldouble(int maxexp)
{
    int neg = (int)(rnd() & 1);
    unsigned r = rndn(10);
    if (r == 0) { /* zero or subnormal */
        unsigned sh = 1 + rndn(63);
        return ld_make(neg, 0, rnd() >> sh);
    }
    if (r == 1 && maxexp > 16000) /* infinity or NaN */
        return ld_make(neg, 0x7fff, 0x8000000000000000ULL | (rnd() & 1 ? rnd() >> 2 : 0));
    if (r == 2)
        return (long double)special_d[rndn(NSPECIAL_D)];
    int e = (int)rndn(2u * (unsigned)maxexp + 1) - maxexp;
    unsigned be = (unsigned)(e + 16383);
    if (be == 0)
        be = 1;
    if (be >= 0x7fff)
        be = 0x7ffe;
    uint64_t m = 0x8000000000000000ULL | rnd();
    if (rnd() & 1) /* short mantissas: exact decimal ties */
        m &= ~0ULL << (64 - 1 - rndn(20));
    return ld_make(neg, be, m);
}

/* ------------------------------------------------------------ printf family */

static const char *const LEN_MOD[] = {"", "hh", "h", "l", "ll", "j", "z", "t"};

/* Random flags/width/precision for a format: appends to f, sets the '*'
 * arguments. Returns the number of '*' arguments. */
static int rnd_spec(char *f, size_t *fl, int allow_hash, int maxprec, int *star)
{
    int ns = 0;
    const char *flags = "-+ #0";
    for (int i = 0; i < 5; i++)
        if (rndn(4) == 0 && (flags[i] != '#' || allow_hash))
            f[(*fl)++] = flags[i];
    switch (rndn(4)) {
    case 1:
        *fl += (size_t)sprintf(f + *fl, "%u", 1 + rndn(30));
        break;
    case 2:
        f[(*fl)++] = '*';
        star[ns++] = (int)rndn(61) - 30;
        break;
    default:
        break;
    }
    switch (rndn(5)) {
    case 1:
    case 4:
        *fl += (size_t)sprintf(f + *fl, ".%u", rndn((uint32_t)maxprec + 1));
        break;
    case 2:
        f[(*fl)++] = '.';
        f[(*fl)++] = '*';
        star[ns++] = (int)rndn((uint32_t)maxprec + 8) - 6;
        break;
    case 3:
        f[(*fl)++] = '.';
        break;
    default:
        break;
    }
    return ns;
}

#define SNP(buf, n, fmt, ns, star, ...)                                                            \
    ((ns) == 0   ? snprintf(buf, n, fmt, __VA_ARGS__)                                              \
     : (ns) == 1 ? snprintf(buf, n, fmt, (star)[0], __VA_ARGS__)                                   \
                 : snprintf(buf, n, fmt, (star)[0], (star)[1], __VA_ARGS__))

static void emit(acc *a, const char *fmt, int ns, const int *star, const char *out, int ret)
{
    a->n++;
    acc_str(a, fmt);
    acc_u64(a, (uint64_t)(int64_t)ret);
    if (ret > 0)
        acc_bytes(a, out, (size_t)ret);
    if (verbose) {
        printf("V %s", fmt);
        for (int i = 0; i < ns; i++)
            printf(" *%d", star[i]);
        printf(" -> [%s] %d\n", ret >= 0 ? esc(out, (size_t)ret) : "", ret);
    }
}

static void g_printf_int(void)
{
    static char buf[512];
    const char *convs = "diuoxX";
    for (const char *c = convs; *c; c++) {
        acc a;
        acc_init(&a);
        int is_signed = *c == 'd' || *c == 'i';
        for (int i = 0; i < 500; i++) {
            char f[64];
            size_t fl = 0;
            int star[2];
            f[fl++] = '%';
            int ns = rnd_spec(f, &fl, !is_signed && *c != 'u', 25, star);
            int lm = (int)rndn(8);
            fl += (size_t)sprintf(f + fl, "%s%c", LEN_MOD[lm], *c);
            unsigned sh = rndn(64);
            uint64_t v = rnd() >> sh;
            if (is_signed && (rnd() & 1))
                v = 0 - v;
            if (rndn(16) == 0)
                v = rndn(3) == 0 ? 0 : (uint64_t)-(int64_t)rndn(3);
            int r;
            switch (lm) {
            case 0:
            case 1:
            case 2: /* hh and h take a promoted int */
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (int)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (unsigned)v);
                break;
            case 3:
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (long)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (unsigned long)v);
                break;
            case 4:
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (long long)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (unsigned long long)v);
                break;
            case 5:
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (intmax_t)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (uintmax_t)v);
                break;
            case 6:
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (ssize_t)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (size_t)v);
                break;
            default:
                r = is_signed ? SNP(buf, sizeof buf, f, ns, star, (ptrdiff_t)(int64_t)v)
                              : SNP(buf, sizeof buf, f, ns, star, (size_t)v);
                break;
            }
            emit(&a, f, ns, star, buf, r);
        }
        char tag[16];
        snprintf(tag, sizeof tag, "conv %%%c", *c);
        acc_line(tag, &a);
    }
    /* Fixed cases the standard pins down. */
    printf("[%.0d] [%.0x] [%#.0o] [%#x] [%#o] [%+.0d] [% d] [%05d] [%-5d|] [%5.3d] [%-+8.4d]\n", 0, 0, 0,
           0, 0, 0, 42, -42, 42, 7, 99);
    printf("[%hhd] [%hhu] [%hd] [%hu] [%lld] [%llu] [%jd] [%zu] [%td]\n", 300, 511, 70000, 70000,
           LLONG_MIN, ULLONG_MAX, INTMAX_MIN, (size_t)SIZE_MAX, (ptrdiff_t)PTRDIFF_MIN);
    printf("[%*d] [%-*d] [%.*d] [%*.*x] [%.*d]\n", 6, 1, 6, 2, 4, 3, -8, 5, 255, 3, -1, 77);
    printf("[%2$s %1$d] [%1$*3$.*4$d] [%5$-*3$.*4$x]\n", 8, "b", 6, 3, 255u);
}

static void g_printf_str(void)
{
    static char buf[512];
    acc a;
    acc_init(&a);
    char s[80];
    for (int i = 0; i < 800; i++) {
        size_t n = rndn(sizeof s - 1);
        for (size_t j = 0; j < n; j++)
            s[j] = (char)(1 + rndn(255));
        s[n] = 0;
        char f[64];
        size_t fl = 0;
        int star[2];
        f[fl++] = '%';
        int ns = rnd_spec(f, &fl, 0, 90, star);
        int c = (i & 1) ? 's' : 'c';
        f[fl++] = (char)c;
        f[fl] = 0;
        /* the '0' flag is undefined with %c and %s (made '-'), a precision
         * with %c too (drawn again) */
        for (char *p = f; *p; p++)
            if (*p == '0' && (p[-1] == '%' || strchr("-+ #", p[-1])))
                *p = '-';
        int r;
        if (c == 's')
            r = SNP(buf, sizeof buf, f, ns, star, s);
        else if (strchr(f, '.')) {
            i--; /* %c takes no precision */
            continue;
        } else
            r = SNP(buf, sizeof buf, f, ns, star, (int)(unsigned char)(rnd() & 0xff));
        emit(&a, f, ns, star, buf, r);
    }
    acc_line("conv %s %c", &a);
    int r = snprintf(buf, sizeof buf, "[%c%c%c]%%[%5c][%-5c][%.3s][%-6.2s][%6s][%.0s][%s]", 'a', 0, 'b',
                     'x', 'y', "abcdef", "abcdef", "ab", "abc", "");
    printf("fixed %d %s\n", r, esc(buf, (size_t)r));
}

static void g_printf_ptr(void)
{
    char buf[128];
    static const uintptr_t vals[] = {1, 0x10, 0xdeadbeef, 0x7fffffff, 0x12345678, (uintptr_t)-1};
    static const char *const fmts[] = {"%p", "%20p", "%-20p|", "%1p"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        for (size_t j = 0; j < sizeof fmts / sizeof fmts[0]; j++) {
            int r = snprintf(buf, sizeof buf, fmts[j], (void *)vals[i]);
            printf("%s %#jx -> [%s] %d\n", fmts[j], (uintmax_t)vals[i], buf, r);
        }
    /* A null pointer: glibc prints "(nil)", musl "0"; C leaves it open. */
    snprintf(buf, sizeof buf, "%p", (void *)0);
    printf("p-null one-of-(nil)-or-0 %d\n", !strcmp(buf, "(nil)") || !strcmp(buf, "0"));
    printf("L p-null %s -- implementation-defined: glibc (nil), musl 0\n", buf);
    /* Round trip through scanf's %p. */
    int ok = 1;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        void *p = 0;
        snprintf(buf, sizeof buf, "%p", (void *)vals[i]);
        ok &= sscanf(buf, "%p", &p) == 1 && (uintptr_t)p == vals[i];
    }
    printf("p-roundtrip %d\n", ok);
}

/* Is x subnormal? (classification by bits: no libm involved) */
static int is_subnormal_d(double x)
{
    uint64_t u = dbits(x);
    return (u & 0x7ff0000000000000ULL) == 0 && (u & 0x000fffffffffffffULL) != 0;
}

static void g_printf_float(void)
{
    static char buf[8192];
    const char *convs = "eEfFgGaA";
    for (int L = 0; L < 2; L++) {
        for (const char *c = convs; *c; c++) {
            acc a, sub;
            acc_init(&a);
            acc_init(&sub);
            int is_a = *c == 'a' || *c == 'A';
            int is_f = *c == 'f' || *c == 'F';
            unsigned long rt_n = 0, rt_bad = 0;
            int iters = L ? 250 : 600;
            for (int i = 0; i < iters; i++) {
                char f[64];
                size_t fl = 0;
                int star[2];
                f[fl++] = '%';
                int ns = rnd_spec(f, &fl, 1, is_a ? 20 : is_f ? 60 : 40, star);
                fl += (size_t)sprintf(f + fl, "%s%c", L ? "L" : "", *c);
                int r;
                if (!L) {
                    double x = rnd_double();
                    r = SNP(buf, sizeof buf, f, ns, star, x);
                    if (is_a && is_subnormal_d(x)) {
                        /* glibc 0x0.8p-1022, musl 0x1p-1023: compare values */
                        emit(&sub, f, ns, star, buf, r);
                        char g[8];
                        snprintf(g, sizeof g, "%%%c", *c);
                        snprintf(buf, sizeof buf, g, x);
                        rt_n++;
                        rt_bad += dbits(strtod(buf, 0)) != dbits(x);
                        continue;
                    }
                } else {
                    /* full exponent range for a tenth: musl's fmt_fp cost
                     * grows with the exponent (~0.3 ms at 1e4932) */
                    long double x = rnd_ldouble(is_f || i % 10 ? 1200 : 16383);
                    r = SNP(buf, sizeof buf, f, ns, star, x);
                    if (is_a) {
                        /* glibc 0xf.fp+0, musl 0x1.ffp+3: compare values */
                        emit(&sub, f, ns, star, buf, r);
                        char g[8];
                        snprintf(g, sizeof g, "%%L%c", *c);
                        snprintf(buf, sizeof buf, g, x);
                        long double y = strtold(buf, 0);
                        uint16_t se1, se2;
                        uint64_t m1, m2;
                        ld_split(x, &se1, &m1);
                        ld_split(y, &se2, &m2);
                        rt_n++;
                        rt_bad += (se1 != se2 || m1 != m2) && !(isnan(x) && isnan(y));
                        continue;
                    }
                }
                emit(&a, f, ns, star, buf, r);
            }
            char tag[32];
            snprintf(tag, sizeof tag, "conv %%%s%c", L ? "L" : "", *c);
            acc_line(tag, &a);
            if (is_a) {
                printf("%s %s-roundtrip n=%lu bad=%lu\n", tag, L ? "all" : "subnormal", rt_n, rt_bad);
                printf("L conv-%%%s%c-%s n=%lu h=%016" PRIx64 " -- %s\n", L ? "L" : "", *c,
                       L ? "all" : "subnormal", sub.n,
                       sub.h,
                       L ? "glibc puts 4 bits before the point, musl 1"
                         : "glibc prints subnormals as 0x0.xxxp-1022, musl normalised");
            }
        }
    }
    /* Fixed cases: ties round to even on the exact binary value, specials. */
    static const double v[] = {0.5, 1.5, 2.5, 0.125, 0.375, 1e21, 123.456, -0.0, 1e-10};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        printf("[%.0f] [%.2f] [%.0e] [%g] [%#g] [%#.0f] [%+.3e] [%a] [%.1a]\n", v[i], v[i], v[i], v[i],
               v[i], v[i], v[i], v[i], v[i]);
    printf("[%f] [%F] [%e] [%E] [%g] [%G] [%a] [%A] [%08f] [%-8f|] [%+f] [% f]\n", HUGE_VAL, -HUGE_VAL,
           NAN, -NAN, HUGE_VAL, NAN, HUGE_VAL, -NAN, HUGE_VAL, NAN, NAN, HUGE_VAL);
    printf("[%.30f] [%.40e] [%.20g] [%.17g] [%.3000f]\n", 0.1, 1.0 / 3, DBL_MAX, DBL_TRUE_MIN,
           0x1p-60);
    printf("[%Lf] [%.25Le] [%Lg]\n", 1.0L / 3, 1e4000L, LDBL_MAX);
    snprintf(buf, sizeof buf, "[%La] [%LA]", 1.0L, -LDBL_MAX);
    printf("L La-fixed %s -- glibc puts 4 bits before the point, musl 1\n", buf);
}

static void g_printf_n(void)
{
    signed char hh = 0;
    short h = 0;
    int n = 0;
    long l = 0;
    long long ll = 0;
    intmax_t j = 0;
    ssize_t z = 0;
    ptrdiff_t t = 0;
    char buf[400];
    int r = snprintf(buf, sizeof buf, "%s%hhn%s%hn%d%n%s%ln%5s%lln%jn%.3d%zn%tn", "abc", &hh,
                     "0123456789012345678901234567890123456789012345678901234567890123456789"
                     "0123456789012345678901234567890123456789012345678901234567890123456789"
                     "0123456789012345678901234567890123456789012345678901234567890123456789"
                     "0123456789",
                     &h, 42, &n, "x", &l, "yz", &ll, &j, 7, &z, &t);
    printf("n r=%d hh=%d h=%d n=%d l=%ld ll=%lld j=%jd z=%zd t=%td\n", r, hh, h, n, l, ll, j, z, t);
    int k = -1;
    r = snprintf(buf, 4, "%s%n!", "truncated", &k); /* %n counts what would be written */
    printf("n-truncated r=%d k=%d buf=%s\n", r, k, buf);
    k = -1;
    r = printf("n-stdout%n", &k);
    printf(" r=%d k=%d\n", r, k);
}

static int vsn(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

static void g_printf_snprintf(void)
{
    acc a;
    acc_init(&a);
    unsigned long bad = 0, calls = 0;
    for (int i = 0; i < 1500; i++) {
        char full[300], buf[310];
        double x = rnd_double();
        unsigned sh = rndn(64);
        long long v = (long long)(rnd() >> sh);
        const char *fmts[] = {"%lld|%.3e|%s", "%-20lld%g%s", "%llx %a %.40s", "%lld%f%s"};
        const char *fmt = fmts[rndn(4)];
        const char *s = "the quick brown fox jumps over the lazy dog";
        if (!strcmp(fmt, "%lld%f%s") && !(fabs(x) < 1e100))
            x = 1.5;
        if (is_subnormal_d(x)) /* %a of subnormals differs (see printf.float) */
            x = 1.0 / 3;
        int len = snprintf(full, sizeof full, fmt, v, x, s);
        if (len < 0 || len >= (int)sizeof full) {
            bad++;
            continue;
        }
        size_t ns[] = {0, 1, 2, (size_t)len - 1, (size_t)len, (size_t)len + 1, rndn((uint32_t)len + 2)};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            size_t n = ns[k];
            if (n > (size_t)len + 1)
                continue;
            memset(buf, 0xAA, sizeof buf);
            int r = (k & 1) ? snprintf(buf, n, fmt, v, x, s) : vsn(buf, n, fmt, v, x, s);
            calls++;
            int ok = r == len;
            if (n > 0) {
                size_t w = n - 1 < (size_t)len ? n - 1 : (size_t)len;
                ok &= memcmp(buf, full, w) == 0 && buf[w] == 0;
            }
            for (size_t m = n; m < sizeof buf; m++)
                ok &= (unsigned char)buf[m] == 0xAA;
            bad += !ok;
            acc_u64(&a, (uint64_t)r);
            acc_u64(&a, n);
        }
        a.n++;
        acc_bytes(&a, full, (size_t)len);
    }
    int r0 = snprintf(NULL, 0, "%d-%s-%.3f", 12345, "abc", 2.0);
    printf("snprintf calls=%lu bad=%lu null0=%d\n", calls, bad, r0);
    acc_line("snprintf", &a);
    char big[16];
    int rb = snprintf(big, sizeof big, "%0*d", 5000, 7);
    printf("snprintf wide r=%d len=%zu\n", rb, strlen(big));
    char sb[64];
    int rs = sprintf(sb, "%s=%d;%c", "sprintf", -17, 'Z');
    printf("sprintf r=%d [%s]\n", rs, sb);
    int rf = fprintf(stdout, "fprintf %s %u", "ok", 3u);
    printf(" r=%d\n", rf);
    fputs("fputs ", stdout);
    putchar('Q');
    puts(" puts");
}

/* ---------------------------------------------------------------- scanf */

static void g_scanf(void)
{
    int a = 0, b = 0;
    unsigned u = 0;
    long l = 0;
    double d = 0;
    float f = 0;
    char s[32] = "", t[32] = "";
    int n = 0;
    int r = sscanf("  -42 0x1F 077 3.25e2 -1.5 word [rest] tail", "%d %i %o %lf %f %31s [%31[^]]]%n", &a, &b,
                   &u, &d, &f, s, t, &n);
    printf("sscanf r=%d a=%d b=%d u=%u d=%.17g f=%.9g s=%s t=%s n=%d\n", r, a, b, u, d, (double)f, s, t,
           n);
    r = sscanf("12abc", "%d%ld", &a, &l);
    printf("sscanf partial r=%d a=%d\n", r, a);
    r = sscanf("", "%d", &a);
    printf("sscanf empty r=%d\n", r);
    acc h;
    acc_init(&h);
    unsigned long bad = 0;
    char buf[64];
    for (int i = 0; i < 1000; i++) {
        double x = rnd_double();
        if (isnan(x))
            continue;
        unsigned sh = rndn(64);
        long long v = (long long)(rnd() >> sh), w = 0;
        if (rnd() & 1)
            v = -v;
        snprintf(buf, sizeof buf, "%.17g %lld", x, v);
        double y = 0;
        if (sscanf(buf, "%lf %lld", &y, &w) != 2 || dbits(y) != dbits(x) || v != w)
            bad++;
        h.n++;
        acc_u64(&h, dbits(y));
    }
    printf("sscanf roundtrip bad=%lu\n", bad);
    acc_line("sscanf values", &h);
}

/* ---------------------------------------------------------- strtod family */

/* errno of a strtod-family call, normalised where C and POSIX leave room:
 * no conversion (end == s): POSIX allows EINVAL (musl sets it, glibc not);
 * a result of magnitude <= the smallest normal (underflow, C: whether errno
 * becomes ERANGE is implementation-defined; glibc sets it for every inexact
 * tiny result, musl only for zero or precision lost). Overflow must be
 * ERANGE and is printed as it is. */
static const char *strto_errno(int e, int noconv, int tiny)
{
    if (noconv && (e == 0 || e == EINVAL))
        return "0-or-EINVAL";
    if (tiny && (e == 0 || e == ERANGE))
        return "0-or-ERANGE";
    return errname(e);
}

static void g_strtod(void)
{
    static const char *const strs[] = {
        "0", "-0", "1", "  +12.5e+2xyz", ".5", "5.", "e5", "-.e1", "1e", "1e+", "1e+x", "0x", "0x.p1",
        "0x1p-1074", "0x1.fffffffffffffp1023", "0x1P+4", "0X.8p1", "0x1.8",
        "4.9e-324", "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-400", "-1e-400",
        "2.2250738585072011e-308", "2.2250738585072012e-308", "1e23", "8.98846567431158e307",
        "1.7976931348623157e308", "1.7976931348623158e308", "1.797693134862315807e308",
        "1.7976931348623159e308", "1e400", "-1e400", "inf", "-INF", "infinity", "Infinit", "+infINITYx",
        "nan", "-NaN", "nan()", "nan(123)", "NAN(abc_Z9)", "nan(", "nanx", "  \t\n 7", "1_000",
        "0.000000000000000000000000000000000000000000000000000000000000000000000000000001e77",
        "123456789012345678901234567890123456789012345678901234567890",
        "9007199254740993", "9007199254740993.00000000000000000000000000001", "0.1e-2147483648",
        "1e2147483648", "1e-2147483649", "00000000000000000000000000000000000000001.5", "", "-", "+.",
        "3.4028235677973366e38", "1.4e-45", "7.0064923216240854e-46", "3.40282357e38",
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *s = strs[i];
        char *e, *ef_, *el_;
        errno = 0;
        double d = strtod(s, &e);
        int ed = errno;
        errno = 0;
        float f = strtof(s, &ef_);
        int ef = errno;
        errno = 0;
        long double ld = strtold(s, &el_);
        int el = errno;
        uint16_t se;
        uint64_t m;
        ld_split(ld, &se, &m);
        int dnan = isnan(d), fnan = isnan(f), lnan = isnan(ld);
        /* NaN payloads from "nan(...)" are implementation-defined: print NaN by class */
        /* NaN: class only (sign and payload of "-nan", "nan(...)": below) */
        printf("S [%s] d=%016" PRIx64 " end=%td %s f=%08" PRIx32 " end=%td %s ld=%04x:%016" PRIx64
               " end=%td %s\n",
               esc(s, strlen(s)), dnan ? 0x7ff8000000000000ULL : dbits(d), e - s,
               strto_errno(ed, e == s, fabs(d) <= DBL_MIN), fnan ? 0x7fc00000u : fbits(f), ef_ - s,
               strto_errno(ef, ef_ == s, fabsf(f) <= FLT_MIN), lnan ? 0x7fffu : se,
               lnan ? 0xc000000000000000ULL : m, el_ - s, strto_errno(el, el_ == s, fabsl(ld) <= LDBL_MIN));
    }
    /* "-nan": C says the result is negated; glibc returns a negative NaN,
     * musl a positive one. */
    {
        double d = strtod("-nan", 0);
        float f = strtof("-nan", 0);
        long double ld = strtold("-nan", 0);
        printf("S [-nan] isnan=%d%d%d\n", isnan(d) != 0, isnan(f) != 0, isnan(ld) != 0);
        printf("L strtod-minus-nan-sign %d%d%d -- glibc negates the NaN, musl does not\n", signbit(d) != 0,
               signbit(f) != 0, signbit(ld) != 0);
    }
    /* A hexadecimal double that rounds or scales past DBL_MAX: C requires
     * ERANGE; musl 1.2.3 returns inf with errno 0 (strtof and strtold are
     * right). */
    {
        static const char *const hx[] = {"0x1.fffffffffffff8p1023", "0x1p1024", "-0x2p1023"};
        for (size_t i = 0; i < sizeof hx / sizeof hx[0]; i++) {
            char *e;
            errno = 0;
            double d = strtod(hx[i], &e);
            int ed = errno;
            errno = 0;
            float f = strtof(hx[i], 0);
            printf("S [%s] d=%016" PRIx64 " end=%td f=%08" PRIx32 " %s\n", hx[i], dbits(d), e - hx[i], fbits(f),
                   errname(errno));
            printf("L strtod-hex-overflow-errno[%s] %s -- C requires ERANGE; musl 1.2.3 leaves errno 0\n",
                   hx[i], errname(ed));
        }
    }

    /* Round trips: %.17g and %a of random doubles read back to the same bits. */
    char buf[64];
    unsigned long bad17 = 0, bada = 0, n = 0;
    acc h;
    acc_init(&h);
    for (int i = 0; i < 3000; i++) {
        double x = rnd_double();
        if (isnan(x))
            continue;
        n++;
        snprintf(buf, sizeof buf, "%.17g", x);
        char *e;
        double y = strtod(buf, &e);
        bad17 += dbits(y) != dbits(x) || *e;
        acc_str(&h, buf);
        snprintf(buf, sizeof buf, "%a", x);
        bada += dbits(strtod(buf, 0)) != dbits(x);
        if (verbose)
            printf("V %.17g %a\n", x, x);
    }
    h.n = n;
    printf("strtod roundtrip n=%lu bad17=%lu bada=%lu\n", n, bad17, bada);
    acc_line("strtod roundtrip strings", &h);

    /* Random decimal strings (long mantissas, all exponents): correctly
     * rounded in both libcs, so the bits must agree exactly. */
    acc_init(&h);
    for (int i = 0; i < 2000; i++) {
        char s[128];
        size_t k = 0;
        if (rnd() & 1)
            s[k++] = '-';
        unsigned nd = 1 + rndn(rndn(4) ? 20 : 60);
        unsigned dot = rndn(nd + 1);
        for (unsigned j = 0; j < nd; j++) {
            if (j == dot && j)
                s[k++] = '.';
            s[k++] = (char)('0' + rndn(10));
        }
        k += (size_t)sprintf(s + k, "e%d", (int)rndn(700) - 360);
        s[k] = 0;
        char *e;
        errno = 0;
        double d = strtod(s, &e);
        float f = strtof(s, 0);
        h.n++;
        acc_u64(&h, dbits(d));
        acc_u64(&h, fbits(f));
        acc_u64(&h, (uint64_t)(e - s));
        if (verbose)
            printf("V %s %016" PRIx64 " %08" PRIx32 "\n", s, dbits(d), fbits(f));
    }
    acc_line("strtod decimal", &h);

    /* strtof: %.9g round trips of random floats. */
    unsigned long badf = 0;
    n = 0;
    acc_init(&h);
    for (int i = 0; i < 2000; i++) {
        float x = rnd_float();
        if (isnan(x))
            continue;
        n++;
        snprintf(buf, sizeof buf, "%.9g", (double)x);
        badf += fbits(strtof(buf, 0)) != fbits(x);
        acc_str(&h, buf);
    }
    h.n = n;
    printf("strtof roundtrip n=%lu bad=%lu\n", n, badf);
    acc_line("strtof roundtrip strings", &h);

    /* strtold: %.21Lg round trips of random long doubles. */
    unsigned long badl = 0;
    n = 0;
    acc_init(&h);
    for (int i = 0; i < 500; i++) {
        /* mostly |binary exponent| <= 1200: musl's strtold costs ~1 ms at e4932 */
        long double x = rnd_ldouble(i % 25 ? 1200 : 16383);
        if (isnan(x))
            continue;
        n++;
        char lb[80];
        snprintf(lb, sizeof lb, "%.21Lg", x);
        long double y = strtold(lb, 0);
        uint16_t s1, s2;
        uint64_t m1, m2;
        ld_split(x, &s1, &m1);
        ld_split(y, &s2, &m2);
        badl += s1 != s2 || m1 != m2;
        acc_str(&h, lb);
    }
    h.n = n;
    printf("strtold roundtrip n=%lu bad=%lu\n", n, badl);
    acc_line("strtold roundtrip strings", &h);
}

static void g_strtol(void)
{
    static const char *const strs[] = {
        "0", "-0", "42", "  -42xyz", "+7", "0x1A", "0X1a", "0x", "0xg", "0b101", "0101", "08", "z", "Zz",
        "1010102", "777", "-0x80000000", "2147483647", "2147483648", "-2147483648", "-2147483649",
        "4294967295", "4294967296", "-4294967295", "-4294967296", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "-18446744073709551615", "-18446744073709551616",
        "0x7fffffffffffffff", "0x8000000000000000", "0xffffffffffffffff", "0x10000000000000000",
        "99999999999999999999999999", "-1", "", " ", "-", "+-1", "- 1", "\t\n\v\f\r 12",
        "1111111111111111111111111111111111111111111111111111111111111111",
        "11111111111111111111111111111111111111111111111111111111111111111", "3w5e11264sgsf",
        "3w5e11264sgsg", "zzzzzzzzzzzzz", "0x0x1",
    };
    static const int bases[] = {0, 2, 8, 10, 16, 36};
    acc h;
    acc_init(&h);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            const char *s = strs[i];
            int base = bases[b];
            char *e1, *e2, *e3, *e4;
            errno = 0;
            long v1 = strtol(s, &e1, base);
            int er1 = errno;
            errno = 0;
            unsigned long v2 = strtoul(s, &e2, base);
            int er2 = errno;
            errno = 0;
            long long v3 = strtoll(s, &e3, base);
            int er3 = errno;
            errno = 0;
            unsigned long long v4 = strtoull(s, &e4, base);
            int er4 = errno;
            printf("I [%s] b%d l=%ld/%td/%s ul=%lu/%td/%s ll=%lld/%td/%s ull=%llu/%td/%s\n", esc(s, strlen(s)),
                   base, v1, e1 - s, strto_errno(er1, e1 == s, 0), v2, e2 - s, strto_errno(er2, e2 == s, 0), v3,
                   e3 - s, strto_errno(er3, e3 == s, 0), v4, e4 - s, strto_errno(er4, e4 == s, 0));
        }
    }
    /* Invalid bases. */
    static const int badb[] = {1, 37, -1};
    for (size_t b = 0; b < 3; b++) {
        static const char num[] = "123";
        char *e = (char *)num; /* glibc leaves it as it is, musl stores num */
        errno = 0;
        long v = strtol(num, &e, badb[b]);
        int er = errno;
        printf("I base %d v=%ld end=%s %s\n", badb[b], v, e == num ? "nptr" : "moved", errname(er));
    }
    /* Random round trips through each base. */
    unsigned long bad = 0;
    for (int i = 0; i < 3000; i++) {
        static const char dig[] = "0123456789abcdefghijklmnopqrstuvwxyz";
        int base = (int)(2 + rndn(35));
        unsigned sh = rndn(64);
        uint64_t v = rnd() >> sh;
        char s[80], *p = s + sizeof s - 1;
        *p = 0;
        uint64_t w = v;
        do {
            char c = dig[w % (unsigned)base];
            *--p = (rnd() & 1) ? (char)(c >= 'a' ? c - 32 : c) : c;
            w /= (unsigned)base;
        } while (w);
        char *e;
        errno = 0;
        unsigned long long r = strtoull(p, &e, base);
        bad += r != v || *e || errno;
        int neg = (int)(rnd() & 1);
        if (v <= (uint64_t)LLONG_MAX) {
            char t[84];
            snprintf(t, sizeof t, "%s%s", neg ? "-" : "+", p);
            long long q = strtoll(t, &e, base);
            bad += q != (neg ? -(long long)v : (long long)v) || *e;
            errno = 0;
            long ql = strtol(t, &e, base);
            long want = (v > (uint64_t)LONG_MAX) ? (neg ? LONG_MIN : LONG_MAX) : (neg ? -(long)v : (long)v);
            if (neg && v == (uint64_t)LONG_MAX + 1)
                want = LONG_MIN;
            bad += ql != want;
            int wante = !(v <= (uint64_t)LONG_MAX || (neg && v == (uint64_t)LONG_MAX + 1));
            bad += (errno == ERANGE) != wante;
        }
        h.n++;
        acc_u64(&h, r);
    }
    printf("strtol roundtrip bad=%lu\n", bad);
    acc_line("strtol values", &h);
    printf("atoi %d %ld %lld\n", atoi("  -123x"), atol("456"), atoll("-9000000000"));
}

/* -------------------------------------------------------- qsort / bsearch */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    uint32_t key;
    uint32_t idx;
    char pad[32];
} rec;

static int cmp_rec(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_rec_key(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static void g_qsort(void)
{
    static int ia[6000];
    static double da[3000];
    static rec ra[2000];
    static char sbuf[2000][12];
    static char *sa[2000];
    static const unsigned sizes[] = {0, 1, 2, 3, 5, 7, 16, 31, 100, 1000, 6000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        unsigned n = sizes[si];
        for (int dup = 0; dup < 3; dup++) {
            uint64_t sum = 0;
            for (unsigned i = 0; i < n; i++) {
                ia[i] = dup == 0 ? (int)rnd() : dup == 1 ? (int)rndn(4) : (int)(n - i); /* random, few, reversed */
                sum += (uint32_t)ia[i];
            }
            qsort(ia, n, sizeof ia[0], cmp_int);
            int sorted = 1;
            uint64_t sum2 = 0;
            acc h;
            acc_init(&h);
            for (unsigned i = 0; i < n; i++) {
                sum2 += (uint32_t)ia[i];
                if (i)
                    sorted &= ia[i - 1] <= ia[i];
                acc_u64(&h, (uint32_t)ia[i]);
            }
            printf("qsort int n=%u kind=%d sorted=%d sum=%d h=%016" PRIx64 "\n", n, dup, sorted, sum == sum2,
                   h.h);
        }
    }
    unsigned n = 3000;
    for (unsigned i = 0; i < n; i++) {
        double x;
        do
            x = rnd_double();
        while (isnan(x));
        da[i] = x;
    }
    qsort(da, n, sizeof da[0], cmp_dbl);
    int sorted = 1;
    acc h;
    acc_init(&h);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            sorted &= !(da[i - 1] > da[i]);
        acc_u64(&h, dbits(da[i] == 0 ? 0.0 : da[i])); /* -0 == 0: their order is unspecified */
    }
    printf("qsort double n=%u sorted=%d h=%016" PRIx64 "\n", n, sorted, h.h);

    n = 2000;
    for (unsigned i = 0; i < n; i++) {
        ra[i].key = (uint32_t)rndn(500);
        ra[i].idx = i;
        memset(ra[i].pad, (int)(i & 0xff), sizeof ra[i].pad);
    }
    qsort(ra, n, sizeof ra[0], cmp_rec);
    sorted = 1;
    int intact = 1;
    acc_init(&h);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            sorted &= cmp_rec(&ra[i - 1], &ra[i]) < 0;
        for (size_t k = 0; k < sizeof ra[i].pad; k++)
            intact &= (unsigned char)ra[i].pad[k] == (ra[i].idx & 0xff);
        acc_u64(&h, ra[i].key);
        acc_u64(&h, ra[i].idx);
    }
    printf("qsort rec40 n=%u sorted=%d intact=%d h=%016" PRIx64 "\n", n, sorted, intact, h.h);

    /* bsearch on the sorted records by key: every present key found, absent
     * keys not (which of equal keys is found is unspecified: compare keys). */
    unsigned found = 0, wrong = 0, absent_ok = 0;
    for (uint32_t k = 0; k < 600; k++) {
        rec key = {.key = k};
        rec *p = bsearch(&key, ra, n, sizeof ra[0], cmp_rec_key);
        int present = 0;
        for (unsigned i = 0; i < n && !present; i++)
            present = ra[i].key == k;
        if (present) {
            found += p != 0;
            wrong += p && p->key != k;
        } else
            absent_ok += p == 0;
    }
    printf("bsearch found=%u wrong=%u absent_ok=%u\n", found, wrong, absent_ok);
    int one = 5;
    printf("bsearch empty=%d\n", bsearch(&one, ia, 0, sizeof(int), cmp_int) == 0);

    n = 2000;
    for (unsigned i = 0; i < n; i++) {
        unsigned len = 1 + rndn(10);
        for (unsigned k = 0; k < len; k++)
            sbuf[i][k] = (char)('a' + rndn(3));
        sbuf[i][len] = 0;
        sa[i] = sbuf[i];
    }
    qsort(sa, n, sizeof sa[0], cmp_str);
    sorted = 1;
    acc_init(&h);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            sorted &= strcmp(sa[i - 1], sa[i]) <= 0;
        acc_str(&h, sa[i]);
    }
    printf("qsort str n=%u sorted=%d h=%016" PRIx64 "\n", n, sorted, h.h);
    const char *key = sa[777];
    char **p = bsearch(&key, sa, n, sizeof sa[0], cmp_str);
    printf("bsearch str found=%d\n", p && !strcmp(*p, key));
}

/* ---------------------------------------------------------------- setjmp */

static jmp_buf jb_outer, jb_inner;
static volatile int depth_reached;

static void dive(int depth, int val)
{
    volatile char pad[64];
    pad[0] = (char)depth;
    depth_reached = depth + pad[0] - pad[0];
    if (depth <= 0) {
        if (val != INT_MIN) /* (a way back, for the compiler's recursion check) */
            longjmp(jb_outer, val);
        return;
    }
    dive(depth - 1, val);
    pad[1] = 0; /* not a tail call */
}

/* setjmp in one of the contexts C allows (a switch's controlling expression),
 * then a longjmp(val) from `depth` calls down. Returns what setjmp returned
 * the second time; *local is a volatile local changed between the two. */
static int jump_once(int depth, int val, int *local)
{
    volatile int lv = 1;
    volatile int got = -999;
    switch (setjmp(jb_outer)) {
    case 0:
        lv = 2;
        dive(depth, val);
        break;
    case 1: got = 1; break;
    case 2: got = 2; break;
    case -1: got = -1; break;
    case 12345: got = 12345; break;
    default: got = -998; break;
    }
    *local = lv;
    return got;
}

static int nested(void)
{
    volatile int r = 0;
    switch (setjmp(jb_inner)) {
    case 0: longjmp(jb_inner, 77);
    case 77: r = 77; break;
    default: r = -1; break;
    }
    return r;
}

static void g_setjmp(void)
{
    static const int vals[] = {1, 2, 0, -1, 12345};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int local = 0;
        int r = jump_once(50 + (int)i * 10, vals[i], &local);
        printf("setjmp longjmp(%d) -> %d depth=%d local=%d\n", vals[i], r, depth_reached, local);
    }
    printf("setjmp nested %d\n", nested());
    static jmp_buf loop;
    static volatile int count;
    count = 0;
    if (setjmp(loop) < 1000) {
        count++;
        if (count < 1000)
            longjmp(loop, count);
    }
    printf("setjmp loop count=%d\n", count);
    /* the stack is usable after all that, and deep unwinding works (1000
     * frames: ~100 KiB of stack, within `sandlet run`'s default 256 KiB) */
    int local = 0;
    int r = jump_once(1000, 2, &local);
    printf("setjmp deep -> %d depth=%d local=%d\n", r, depth_reached, local);
}

/* ---------------------------------------------------------------- malloc */

static uint8_t pat(uint32_t seed, size_t i)
{
    return (uint8_t)(seed + i * 131 + (i >> 9));
}

/* Which bytes of an n-byte block carry the pattern: all of a small block;
 * of a big one the first and last 4 KiB and every 65521st byte between (so
 * that a 1 MiB block costs a few pages, not 256 page faults: the sandbox
 * runs in an emulated CPU). */
#define SPARSE_FROM 8192
static size_t next_sample(size_t n, size_t i)
{
    if (n <= SPARSE_FROM || i + 1 < 4096 || i + 1 >= n - 4096)
        return i + 1;
    size_t j = (i + 1 + 65520) / 65521 * 65521;
    return j < n - 4096 ? j : n - 4096;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i = next_sample(n, i))
        p[i] = pat(seed, i);
}

/* Checks the pattern bytes among [0, upto) of a block filled as
 * fill(p, n, seed). */
static int check(const uint8_t *p, size_t n, size_t upto, uint32_t seed)
{
    for (size_t i = 0; i < upto; i = next_sample(n, i))
        if (p[i] != pat(seed, i))
            return 0;
    return 1;
}

typedef struct {
    uint8_t *p;
    size_t n;
    uint32_t seed;
} slot;

static size_t rnd_size(void)
{
    unsigned bits = rndn(21); /* 1 B .. 1 MiB, log-uniform */
    return 1 + (size_t)(rnd() & ((1ULL << bits) - 1));
}

/* Blocks keep one invariant: bytes [0, n) follow fill(p, n, seed). A
 * realloc keeps the old prefix (checked) and the block is refilled. */
static void g_malloc(void)
{
    enum { NSLOT = 64, OPS = 3000 };
    static slot s[NSLOT];
    memset(s, 0, sizeof s);
    acc h;
    acc_init(&h);
    unsigned long bad = 0, misaligned = 0, nulls = 0, zero_bad = 0;
    for (int op = 0; op < OPS; op++) {
        unsigned k = rndn(NSLOT);
        slot *b = &s[k];
        uint32_t seed = (uint32_t)rnd();
        unsigned what = rndn(4);
        if (!b->p) {
            size_t n = rnd_size();
            if (what == 0) {
                size_t cnt = 1 + rndn(8), each = (n + cnt - 1) / cnt;
                b->p = calloc(cnt, each);
                n = cnt * each;
                if (b->p) {
                    for (size_t i = 0; i < n; i = next_sample(n, i))
                        zero_bad += b->p[i] != 0;
                }
            } else
                b->p = malloc(n);
            if (!b->p) {
                nulls++;
                continue;
            }
            misaligned += ((uintptr_t)b->p & (sizeof(void *) * 2 - 1)) != 0;
            b->n = n;
            b->seed = seed;
            fill(b->p, n, seed);
            acc_u64(&h, n);
        } else if (what == 0) {
            size_t n = rnd_size();
            size_t keep = n < b->n ? n : b->n;
            uint8_t *q = realloc(b->p, n);
            if (!q) {
                nulls++;
                continue;
            }
            bad += !check(q, b->n, keep, b->seed);
            misaligned += ((uintptr_t)q & (sizeof(void *) * 2 - 1)) != 0;
            b->p = q;
            b->n = n;
            b->seed = seed;
            fill(q, n, seed);
            acc_u64(&h, n ^ 0x5555);
        } else {
            bad += !check(b->p, b->n, b->n, b->seed);
            acc_u64(&h, b->n ^ 0xaaaa);
            acc_u64(&h, b->p[b->n - 1]);
            free(b->p);
            b->p = 0;
        }
        h.n++;
    }
    for (unsigned k = 0; k < NSLOT; k++) {
        if (s[k].p) {
            bad += !check(s[k].p, s[k].n, s[k].n, s[k].seed);
            acc_u64(&h, s[k].p[s[k].n - 1]);
            free(s[k].p);
            s[k].p = 0;
        }
    }
    printf("malloc ops=%lu bad=%lu misaligned=%lu nulls=%lu calloc_nonzero=%lu\n", h.n, bad, misaligned,
           nulls, zero_bad);
    acc_line("malloc checksum", &h);

    /* Many small blocks, freed in random order. */
    enum { NSMALL = 4000 };
    static uint8_t *sm[NSMALL];
    unsigned long sbad = 0;
    for (unsigned i = 0; i < NSMALL; i++) {
        size_t n = 1 + rndn(200);
        sm[i] = malloc(n);
        if (!sm[i]) {
            sbad++;
            continue;
        }
        memset(sm[i], (int)(i & 0xff), n);
        sm[i][n - 1] = (uint8_t)(i & 0xff);
        sm[i][0] = (uint8_t)n;
    }
    for (unsigned i = NSMALL; i > 1; i--) {
        unsigned j = rndn(i);
        uint8_t *t = sm[i - 1];
        sm[i - 1] = sm[j];
        sm[j] = t;
    }
    for (unsigned i = 0; i < NSMALL; i++) {
        if (!sm[i])
            continue;
        size_t n = sm[i][0];
        uint8_t v = sm[i][n - 1];
        for (size_t k = 1; k + 1 < n; k++)
            sbad += sm[i][k] != v;
        free(sm[i]);
    }
    printf("malloc small n=%d bad=%lu\n", NSMALL, sbad);

    volatile size_t huge = SIZE_MAX; /* (hidden from the compiler's size warnings) */
    errno = 0;
    void *p = malloc(huge);
    printf("malloc(SIZE_MAX) null=%d %s\n", p == 0, errname(errno));
    free(p);
    errno = 0;
    p = calloc(huge / 2, 3);
    printf("calloc overflow null=%d %s\n", p == 0, errname(errno));
    free(p);
    p = malloc(0);
    printf("malloc(0) freeable=1\n");
    free(p);
    p = realloc(0, 100);
    printf("realloc(NULL) ok=%d\n", p != 0);
    void *q = realloc(p, 0);
    /* C17: implementation-defined; glibc frees and returns NULL, musl returns
     * a new minimum-size block. */
    printf("L realloc(p,0) null=%d -- implementation-defined: glibc NULL, musl a new block\n", q == 0);
    free(q);
    free(0);
    printf("free(NULL) ok\n");
}

static void g_memalign(void)
{
    unsigned long bad = 0, n = 0;
    for (size_t al = sizeof(void *); al <= 65536; al *= 2) {
        for (int i = 0; i < 8; i++) {
            size_t sz = 1 + rndn(5000);
            void *p = 0;
            int r = posix_memalign(&p, al, sz);
            n++;
            if (r || !p || ((uintptr_t)p & (al - 1))) {
                bad++;
                continue;
            }
            memset(p, 0x5a, sz);
            free(p);
            size_t asz = (sz + al - 1) / al * al;
            p = aligned_alloc(al, asz);
            n++;
            if (!p || ((uintptr_t)p & (al - 1))) {
                bad++;
                continue;
            }
            memset(p, 0xa5, asz);
            free(p);
        }
    }
    printf("memalign n=%lu bad=%lu\n", n, bad);
    void *p = (void *)1;
    int r = posix_memalign(&p, 3, 16);
    printf("posix_memalign(3) r=%s p-unchanged=%d\n", errname(r), p == (void *)1);
    r = posix_memalign(&p, sizeof(void *) / 2, 16);
    printf("posix_memalign(ptr/2) r=%s\n", errname(r));
    r = posix_memalign(&p, 4096, SIZE_MAX - 4096);
    printf("posix_memalign(huge) r=%s\n", errname(r));
    int al_ok = 1;
    for (int i = 0; i < 200; i++) {
        void *m = malloc(1 + rndn(300));
        al_ok &= ((uintptr_t)m % _Alignof(max_align_t)) == 0;
        free(m);
    }
    printf("malloc max_align_t-aligned=%d\n", al_ok);
}

/* ------------------------------------------------------------------- math */

/* One M line: values of one function over one input list. */
static void mline_d(const char *name, int tol, const double *v, int n)
{
    printf("M %s d%d", name, tol);
    for (int i = 0; i < n; i++) {
        if (isnan(v[i]))
            printf(" nan");
        else
            printf(" %.17g", v[i]);
    }
    printf("\n");
}

static void mline_f(const char *name, int tol, const float *v, int n)
{
    printf("M %s f%d", name, tol);
    for (int i = 0; i < n; i++) {
        if (isnan(v[i]))
            printf(" nan");
        else
            printf(" %.9g", (double)v[i]);
    }
    printf("\n");
}

#define NM 48 /* inputs per function */

typedef double (*fd1)(double);
typedef float (*ff1)(float);

typedef struct {
    const char *name;
    fd1 d;
    ff1 f;
    double lo, hi; /* random inputs uniform in [lo, hi] and log-scale within */
    int tol_d, tol_f;
} mfn1;

static void inputs_d(double *x, double lo, double hi)
{
    static const double sp[] = {0.0, -0.0, 1.0, -1.0, 0.5, -0.5, HUGE_VAL, -HUGE_VAL, NAN, 5e-324, 1e-300, 1e-8};
    int k = 0;
    for (; k < 12; k++)
        x[k] = sp[k];
    for (; k < 38; k++)
        x[k] = rnd_range(lo, hi);
    for (; k < NM; k++) { /* log-scale magnitudes within the range */
        double m = fmax(fabs(lo), fabs(hi));
        double v = m * exp2(-rnd_unit() * 60);
        x[k] = (rnd() & 1) && lo < 0 ? -v : v;
        if (x[k] < lo || x[k] > hi)
            x[k] = lo + (hi - lo) * 0.25;
    }
}

static void run1(const mfn1 *m)
{
    double x[NM], y[NM];
    float xf[NM], yf[NM];
    inputs_d(x, m->lo, m->hi);
    for (int i = 0; i < NM; i++)
        y[i] = m->d(x[i]);
    mline_d(m->name, m->tol_d, y, NM);
    if (m->f) {
        for (int i = 0; i < NM; i++) {
            xf[i] = (float)x[i];
            yf[i] = m->f(xf[i]);
        }
        char nm[32];
        snprintf(nm, sizeof nm, "%sf", m->name);
        mline_f(nm, m->tol_f, yf, NM);
    }
}

static const mfn1 fn_trig[] = {
    {"sin", sin, sinf, -10, 10, 2, 2},       {"cos", cos, cosf, -10, 10, 2, 2},
    {"tan", tan, tanf, -10, 10, 2, 2},       {"asin", asin, asinf, -1, 1, 2, 2},
    {"acos", acos, acosf, -1, 1, 2, 2},      {"atan", atan, atanf, -1e4, 1e4, 2, 2},
};
static const mfn1 fn_trig_big[] = {
    {"sin-big", sin, sinf, -1e22, 1e22, 2, 2},
    {"cos-big", cos, cosf, -1e22, 1e22, 2, 2},
    {"tan-big", tan, tanf, -1e22, 1e22, 2, 2},
};
static const mfn1 fn_hyp[] = {
    {"sinh", sinh, sinhf, -30, 30, 2, 2},
    {"cosh", cosh, coshf, -30, 30, 2, 2},
    {"tanh", tanh, tanhf, -20, 20, 2, 2},
    {"sinh-wide", sinh, sinhf, -712, 712, 2, 2},
    {"cosh-wide", cosh, coshf, -712, 712, 2, 2},
};
static const mfn1 fn_exp[] = {
    {"exp", exp, expf, -746, 710, 2, 2},  {"exp-small", exp, expf, -5, 5, 2, 2},
    {"exp2", exp2, exp2f, -1080, 1024, 2, 2}, {"expm1", expm1, expm1f, -40, 710, 2, 2},
    {"expm1-small", expm1, expm1f, -1, 1, 2, 2},
};
static const mfn1 fn_log[] = {
    {"log", log, logf, -1, 1e300, 2, 2},     {"log-near1", log, logf, 0.5, 2, 2, 2},
    {"log2", log2, log2f, -1, 1e300, 2, 2},  {"log10", log10, log10f, -1, 1e300, 2, 2},
    {"log1p", log1p, log1pf, -1, 1e10, 2, 2}, {"log1p-small", log1p, log1pf, -0.5, 0.5, 2, 2},
};
static const mfn1 fn_pow1[] = {
    {"sqrt", sqrt, sqrtf, -1, 1e300, 0, 0},
    /* glibc's cbrt is off by up to 4 ulp (its libm-test-ulps), musl's < 1 */
    {"cbrt", cbrt, cbrtf, -1e300, 1e300, 4, 2},
};
static const mfn1 fn_round1[] = {
    {"floor", floor, floorf, -1e6, 1e6, 0, 0},  {"ceil", ceil, ceilf, -1e6, 1e6, 0, 0},
    {"round", round, roundf, -1e6, 1e6, 0, 0},  {"trunc", trunc, truncf, -1e6, 1e6, 0, 0},
    {"nearbyint", nearbyint, nearbyintf, -1e6, 1e6, 0, 0},
    {"rint", rint, rintf, -1e17, 1e17, 0, 0},
};
static const mfn1 fn_special[] = {
    {"erf", erf, erff, -6, 6, 2, 2},
    {"erfc", erfc, erfcf, -6, 28, 4, 4},
    /* glibc 2.36 documents up to 9 ulp for tgamma */
    {"tgamma", tgamma, tgammaf, 0, 171.7, 10, 4},
    {"tgamma-neg", tgamma, tgammaf, -20, 0, 10, 4},
    {"lgamma", lgamma, lgammaf, 0, 1e6, 4, 4},
};

static void run_table(const mfn1 *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        run1(&t[i]);
}

/* Pairs (x, y) for two-argument functions. */
static void pairs(double *x, double *y, double lo, double hi, double ylo, double yhi)
{
    static const double sp[] = {0.0, -0.0, 1.0, -1.0, HUGE_VAL, -HUGE_VAL, NAN, 2.0, 0.5, 5e-324};
    int k = 0;
    for (int i = 0; i < 10; i++) {
        x[k] = sp[i];
        y[k++] = sp[(i * 3 + 1) % 10];
    }
    for (int i = 0; i < 4; i++) {
        x[k] = sp[i + 4];
        y[k++] = sp[i];
    }
    while (k < NM) {
        x[k] = rndn(4) ? rnd_range(lo, hi) : (double)(int)rnd_range(lo, hi);
        y[k] = rndn(4) ? rnd_range(ylo, yhi) : (double)(int)rnd_range(ylo, yhi);
        k++;
    }
}

typedef double (*fd2)(double, double);
typedef float (*ff2)(float, float);

static void run2(const char *name, fd2 d, ff2 f, int tol_d, int tol_f, double lo, double hi, double ylo,
                 double yhi)
{
    double x[NM], y[NM], r[NM];
    float rf[NM];
    pairs(x, y, lo, hi, ylo, yhi);
    /* fmin/fmax of +0 and -0 may return either (C Annex F: glibc's i386
     * fmin(0, -0) is +0, musl's -0): printed as +0 */
    int zero_free = !strcmp(name, "fmin") || !strcmp(name, "fmax");
    for (int i = 0; i < NM; i++) {
        r[i] = d(x[i], y[i]);
        if (zero_free && x[i] == 0 && y[i] == 0)
            r[i] = 0;
    }
    mline_d(name, tol_d, r, NM);
    for (int i = 0; i < NM; i++) {
        rf[i] = f((float)x[i], (float)y[i]);
        if (zero_free && x[i] == 0 && y[i] == 0)
            rf[i] = 0;
    }
    char nm[32];
    snprintf(nm, sizeof nm, "%sf", name);
    mline_f(nm, tol_f, rf, NM);
}

static void g_math_trig(void)
{
    run_table(fn_trig, sizeof fn_trig / sizeof fn_trig[0]);
    run_table(fn_trig_big, sizeof fn_trig_big / sizeof fn_trig_big[0]);
    run2("atan2", atan2, atan2f, 2, 2, -100, 100, -100, 100);
}

static void g_math_hyp(void)
{
    run_table(fn_hyp, sizeof fn_hyp / sizeof fn_hyp[0]);
}

static void g_math_exp(void)
{
    run_table(fn_exp, sizeof fn_exp / sizeof fn_exp[0]);
}

static void g_math_log(void)
{
    run_table(fn_log, sizeof fn_log / sizeof fn_log[0]);
}

static void g_math_pow(void)
{
    run_table(fn_pow1, sizeof fn_pow1 / sizeof fn_pow1[0]);
    run2("pow", pow, powf, 2, 2, -50, 50, -40, 40);
    run2("pow-pos", pow, powf, 2, 2, 0, 1e5, -60, 60);
    run2("hypot", hypot, hypotf, 2, 2, -1e10, 1e10, -1e10, 1e10);
}

static void g_math_exact(void)
{
    run_table(fn_round1, sizeof fn_round1 / sizeof fn_round1[0]);
    run2("fmod", fmod, fmodf, 0, 0, -1e10, 1e10, -100, 100);
    run2("remainder", remainder, remainderf, 0, 0, -1e10, 1e10, -100, 100);
    run2("fmin", fmin, fminf, 0, 0, -10, 10, -10, 10);
    run2("fmax", fmax, fmaxf, 0, 0, -10, 10, -10, 10);
    run2("fdim", fdim, fdimf, 0, 0, -10, 10, -10, 10);
    run2("copysign", copysign, copysignf, 0, 0, -10, 10, -10, 10);

    double x[NM], r[NM], ip[NM];
    float xf[NM], rf[NM], ipf[NM];
    inputs_d(x, -1e6, 1e6);
    for (int i = 0; i < NM; i++)
        xf[i] = (float)x[i];

    /* lrint / lround: integers, exact; only inputs whose result fits in long */
    printf("lrint");
    for (int i = 0; i < NM; i++)
        if (isfinite(x[i]))
            printf(" %ld", lrint(x[i]));
    printf("\nlrintf");
    for (int i = 0; i < NM; i++)
        if (isfinite(xf[i]))
            printf(" %ld", lrintf(xf[i]));
    printf("\nlround");
    for (int i = 0; i < NM; i++)
        if (isfinite(x[i]))
            printf(" %ld", lround(x[i]));
    printf("\nllrint");
    for (int i = 0; i < NM; i++)
        if (isfinite(x[i]))
            printf(" %lld", llrint(x[i] * 1e9));
    printf("\n");

    /* frexp / ldexp / modf over all magnitudes */
    for (int i = 12; i < NM; i++)
        x[i] = bitsd(rnd());
    int e[NM];
    for (int i = 0; i < NM; i++)
        r[i] = frexp(x[i], &e[i]);
    mline_d("frexp", 0, r, NM);
    printf("frexp-exp");
    for (int i = 0; i < NM; i++)
        printf(" %d", isfinite(x[i]) ? e[i] : 0);
    printf("\n");
    for (int i = 0; i < NM; i++) {
        xf[i] = bitsf((uint32_t)rnd());
        rf[i] = frexpf(xf[i], &e[i]);
    }
    mline_f("frexpf", 0, rf, NM);
    printf("frexpf-exp");
    for (int i = 0; i < NM; i++)
        printf(" %d", isfinite(xf[i]) ? e[i] : 0);
    printf("\n");
    for (int i = 0; i < NM; i++)
        r[i] = ldexp(x[i], (int)rndn(2400) - 1200);
    mline_d("ldexp", 0, r, NM);
    for (int i = 0; i < NM; i++)
        rf[i] = ldexpf(xf[i], (int)rndn(400) - 200);
    mline_f("ldexpf", 0, rf, NM);
    for (int i = 0; i < NM; i++)
        r[i] = scalbn(x[i], (int)rndn(2400) - 1200);
    mline_d("scalbn", 0, r, NM);
    for (int i = 0; i < NM; i++)
        r[i] = modf(ldexp(x[i], -(int)rndn(1100)) , &ip[i]);
    mline_d("modf-frac", 0, r, NM);
    mline_d("modf-int", 0, ip, NM);
    for (int i = 0; i < NM; i++)
        rf[i] = modff(xf[i] / 1e30f, &ipf[i]);
    mline_f("modff-frac", 0, rf, NM);
    mline_f("modff-int", 0, ipf, NM);
    printf("ilogb");
    for (int i = 12; i < NM; i++)
        printf(" %d", ilogb(x[i]));
    printf("\n");

    /* fma: correctly rounded, exact agreement (random full-range bit patterns
     * and near-cancelling triples) */
    double a[NM], b[NM], c[NM];
    for (int i = 0; i < NM; i++) {
        if (i < NM / 2) {
            a[i] = rnd_double();
            b[i] = rnd_double();
            c[i] = rnd_double();
        } else {
            a[i] = rnd_range(-2, 2);
            b[i] = rnd_range(-2, 2);
            c[i] = -a[i] * b[i] * (1 + ldexp(rnd_range(-1, 1), -50));
        }
        r[i] = fma(a[i], b[i], c[i]);
        rf[i] = fmaf((float)a[i], (float)b[i], (float)c[i]);
    }
    mline_d("fma", 0, r, NM);
    mline_f("fmaf", 0, rf, NM);
}

static void g_math_special(void)
{
    run_table(fn_special, sizeof fn_special / sizeof fn_special[0]);
    /* lgamma of negative non-integers, at half and quarter points: those
     * keep away from lgamma's zeros (|gamma(x)| = 1, where no ulp bound
     * holds), except -2.5 and -2.75 (zeros at -2.457 and -2.748), skipped. */
    double x[NM], r[NM];
    float rf[NM];
    int sg[NM], sgf[NM];
    for (int i = 0; i < NM; i++) {
        unsigned k;
        do
            k = rndn(30);
        while (k == 2);
        x[i] = -0.5 - (double)k - (rnd() & 1 ? 0.25 : 0);
    }
    for (int i = 0; i < NM; i++) {
        r[i] = lgamma(x[i]);
        sg[i] = signgam;
        rf[i] = lgammaf((float)x[i]);
        sgf[i] = signgam;
    }
    mline_d("lgamma-neg", 8, r, NM);
    mline_f("lgammaf-neg", 8, rf, NM);
    printf("signgam");
    for (int i = 0; i < NM; i++)
        printf(" %d%d", sg[i], sgf[i]);
    printf("\n");
}

/* --------------------------------------------------------- errno, strings */

static void g_errno(void)
{
    errno = 0;
    long v = strtol("99999999999999999999999", 0, 10);
    printf("errno strtol %s clamp=%d\n", errname(errno), v == LONG_MAX);
    errno = 0;
    int fd = open("/nonexistent/sandlet-libc-test", O_RDONLY);
    int e = errno;
    /* ENOENT natively, EACCES inside the sandbox (no file system there) */
    printf("errno open fd=%d %s\n", fd, e == ENOENT || e == EACCES ? "ENOENT-or-EACCES" : errname(e));
    if (fd >= 0)
        close(fd);
    static const int errs[] = {0, EPERM, ENOENT, EACCES, EINVAL, ERANGE, EDOM, ENOMEM, EBADF, 12345};
    int nonempty = 1;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *s = strerror(errs[i]);
        nonempty &= s && s[0];
    }
    printf("errno strerror nonempty=%d distinct=%d\n", nonempty,
           strcmp(strerror(ENOENT), strerror(EACCES)) != 0);
    errno = 0;
    ssize_t rr = read(-1, &fd, 1);
    e = errno;
    printf("errno read-badfd r=%zd %s\n", rr, errname(e));
    errno = EDOM;
    printf("errno preserved %s\n", errname(errno));
}

static void g_string(void)
{
    enum { N = 4096 };
    static uint8_t src[N + 64], dst[N + 64], ref[N + 64];
    acc h;
    acc_init(&h);
    unsigned long bad = 0;
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)rnd();
    /* memcpy / memmove / memset at every alignment, against byte loops */
    for (int it = 0; it < 600; it++) {
        size_t so = rndn(32), doff = rndn(32), n = rndn(it & 1 ? 64 : N - 64);
        memset(dst, 0xee, sizeof dst);
        memcpy(dst + doff, src + so, n);
        for (size_t i = 0; i < sizeof dst; i++)
            bad += dst[i] != ((i >= doff && i < doff + n) ? src[so + i - doff] : 0xee);
        memcpy(ref, src, sizeof ref);
        memcpy(dst, src, sizeof dst);
        size_t a = rndn(N / 2), b = rndn(N / 2), m = rndn(N / 2);
        memmove(dst + a, dst + b, m);
        for (size_t i = 0; i < m; i++)
            bad += dst[a + i] != ref[b + i];
        int c = (int)rndn(256);
        size_t o = rndn(64), l = rndn(N - 64);
        memset(dst + o, c, l);
        for (size_t i = 0; i < l; i++)
            bad += dst[o + i] != c;
        acc_bytes(&h, dst, 128);
        h.n++;
    }
    printf("string mem bad=%lu\n", bad);
    acc_line("string mem", &h);

    /* memcmp / strcmp / strncmp signs, memchr, strlen, strchr, strrchr */
    char s1[300], s2[300];
    acc_init(&h);
    for (int it = 0; it < 2000; it++) {
        size_t o1 = rndn(16), o2 = rndn(16), n = rndn(200);
        for (size_t i = 0; i < n; i++)
            s1[o1 + i] = s2[o2 + i] = (char)(1 + rndn(255));
        s1[o1 + n] = s2[o2 + n] = 0;
        if (n && (rnd() & 1)) {
            size_t at = o2 + rndn((uint32_t)n);
            s2[at] = (char)(1 + rndn(255));
        }
        int c1 = memcmp(s1 + o1, s2 + o2, n), c2 = strcmp(s1 + o1, s2 + o2);
        int c3 = strncmp(s1 + o1, s2 + o2, rndn((uint32_t)n + 2));
        acc_u64(&h, (uint64_t)(((c1 > 0) - (c1 < 0)) + 3 * ((c2 > 0) - (c2 < 0)) + 9 * ((c3 > 0) - (c3 < 0))));
        acc_u64(&h, strlen(s1 + o1));
        int ch = (int)(unsigned char)s1[o1 + (n ? rndn((uint32_t)n) : 0)];
        const char *p = strchr(s1 + o1, ch), *q = strrchr(s1 + o1, ch);
        const void *r = memchr(s1 + o1, ch, n);
        acc_u64(&h, p ? (uint64_t)(p - s1) : 999);
        acc_u64(&h, q ? (uint64_t)(q - s1) : 999);
        acc_u64(&h, r ? (uint64_t)((const char *)r - s1) : 999);
        h.n++;
    }
    acc_line("string cmp/chr", &h);
    static const char abc[] = "abcabc";
    printf("string strchr-nul %td strrchr %td strrchr-nul %td strchr-miss %d\n", strchr(abc, 0) - abc,
           strrchr(abc, 'b') - abc, strrchr(abc, 0) - abc, strchr(abc, 'z') == 0);

    /* strstr over a two-letter alphabet (many partial matches) */
    acc_init(&h);
    for (int it = 0; it < 1500; it++) {
        char hay[200], nee[20];
        size_t hn = rndn(199), nn = rndn(it & 1 ? 19 : 6);
        for (size_t i = 0; i < hn; i++)
            hay[i] = (char)('a' + rndn(2));
        for (size_t i = 0; i < nn; i++)
            nee[i] = (char)('a' + rndn(2));
        hay[hn] = nee[nn] = 0;
        const char *p = strstr(hay, nee);
        /* reference: naive search */
        long want = -1;
        for (size_t i = 0; i + nn <= hn && want < 0; i++)
            if (!memcmp(hay + i, nee, nn))
                want = (long)i;
        bad += (p ? p - hay : -1) != want;
        acc_u64(&h, (uint64_t)want);
        h.n++;
    }
    printf("string strstr bad=%lu\n", bad);
    acc_line("string strstr", &h);

    /* strtok_r, strncpy, strcasecmp, strdup, strspn/strcspn/strpbrk */
    char text[] = ",,alpha, beta;;gamma ,delta,,";
    char *save = 0, *tok;
    printf("strtok_r");
    for (tok = strtok_r(text, ",; ", &save); tok; tok = strtok_r(0, ",; ", &save))
        printf(" [%s]", tok);
    printf("\n");
    char nb[12];
    memset(nb, 'X', sizeof nb);
    strncpy(nb, "abc", 8);
    printf("strncpy [%s] pad=%d%d%d%d%d tail=%c\n", nb, nb[3], nb[4], nb[5], nb[6], nb[7], nb[8]);
    strncpy(nb, "abcdefghijk", 4);
    printf("strncpy-trunc [%.4s] next=%d\n", nb, nb[4]);
    acc_init(&h);
    for (int it = 0; it < 1000; it++) {
        char a[40], b[40];
        size_t n = rndn(39);
        for (size_t i = 0; i < n; i++) {
            char c = (char)('A' + rndn(4));
            a[i] = (rnd() & 1) ? (char)(c + 32) : c;
            b[i] = (rnd() & 1) ? (char)(c + 32) : c;
            if (rndn(20) == 0)
                b[i] = (char)('0' + rndn(10));
        }
        a[n] = b[n] = 0;
        int c1 = strcasecmp(a, b), c2 = strncasecmp(a, b, rndn(40));
        acc_u64(&h, (uint64_t)(((c1 > 0) - (c1 < 0)) * 3 + ((c2 > 0) - (c2 < 0))));
        char *d = strdup(a);
        char *dn = strndup(a, rndn(40));
        bad += !d || strcmp(d, a) || !dn || strncmp(dn, a, strlen(dn));
        acc_str(&h, dn ? dn : "");
        free(d);
        free(dn);
        h.n++;
    }
    printf("string case/dup bad=%lu\n", bad);
    acc_line("string case/dup", &h);
    printf("strspn %zu strcspn %zu strpbrk %td\n", strspn("aabbcx", "abc"), strcspn("hello, world", " ,"),
           strpbrk("hello, world", "ow") - "hello, world" + (ptrdiff_t)0);
    char cat[32] = "ab";
    strcat(cat, "cd");
    strncat(cat, "efghij", 3);
    printf("strcat [%s] stpcpy %td\n", cat, stpcpy(nb, "xyz") - nb);
}

static void g_time(void)
{
    time_t t = time(NULL);
    printf("time plausible=%d\n", t > 1577836800); /* after 2020-01-01 */
    struct timespec rt, m0, m1;
    int r1 = clock_gettime(CLOCK_REALTIME, &rt);
    printf("clock_gettime realtime r=%d plausible=%d nsec-range=%d near-time=%d\n", r1,
           rt.tv_sec > 1577836800, rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000,
           rt.tv_sec - t >= -1 && rt.tv_sec - t <= 5);
    int r2 = clock_gettime(CLOCK_MONOTONIC, &m0);
    int mono = 1;
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &m1);
        mono &= m1.tv_sec > m0.tv_sec || (m1.tv_sec == m0.tv_sec && m1.tv_nsec >= m0.tv_nsec);
        mono &= m1.tv_nsec >= 0 && m1.tv_nsec < 1000000000;
        m0 = m1;
    }
    printf("clock_gettime monotonic r=%d nondecreasing=%d\n", r2, mono);
    clock_t c = clock();
    printf("clock nonneg=%d\n", c != (clock_t)-1 && c >= 0);

    /* Fixed timestamps within 32-bit time_t (glibc's i386 time_t is 32 bits) */
    static const long long ts[] = {0, 1, -1, 86399, 951782400, 951868800, 1234567890, 1700000000,
                                   2147483647, -2147483647 - 1, 68169600, 1577836800, 978307200, 1483228799};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        time_t tt = (time_t)ts[i];
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        char out[256];
        if (!gmtime_r(&tt, &tm)) {
            printf("gmtime_r %lld failed\n", ts[i]);
            continue;
        }
        size_t n = strftime(out, sizeof out,
                            "%Y-%m-%d %H:%M:%S|%a %A %b %B|%c|%C %d %D %e %F %g %G %h %I %j %m %M %n%p %R %S %t%T "
                            "%u %U %V %w %W %x %X %y %z %%",
                            &tm);
        printf("gmtime %lld: %d %d %d %d %d %d wday=%d yday=%d dst=%d [%s] n=%zu\n", ts[i], tm.tm_year, tm.tm_mon,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_wday, tm.tm_yday, tm.tm_isdst,
               esc(out, n), n);
        struct tm back = tm;
        time_t rt2 = timegm(&back);
        printf("timegm %lld -> %lld\n", ts[i], (long long)rt2);
    }
    char small[8];
    struct tm tm0;
    time_t z = 0;
    gmtime_r(&z, &tm0);
    printf("strftime too-small n=%zu\n", strftime(small, sizeof small, "%Y-%m-%d", &tm0));
    /* mktime/localtime_r in UTC (TZ set here: the sandbox has no zone files) */
    setenv("TZ", "UTC0", 1);
    tzset();
    struct tm lt = {.tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 12, .tm_min = 30, .tm_isdst = 0};
    time_t mk = mktime(&lt);
    printf("mktime %lld wday=%d yday=%d\n", (long long)mk, lt.tm_wday, lt.tm_yday);
    struct tm norm = {.tm_year = 99, .tm_mon = 13, .tm_mday = 32, .tm_hour = 25, .tm_min = 61, .tm_sec = 61};
    mk = mktime(&norm);
    printf("mktime-normalise %lld %d-%d-%d %d:%d:%d\n", (long long)mk, norm.tm_year, norm.tm_mon, norm.tm_mday,
           norm.tm_hour, norm.tm_min, norm.tm_sec);
    time_t one = 1000000000;
    struct tm l2;
    localtime_r(&one, &l2);
    printf("localtime_r %d %d %d %d\n", l2.tm_year, l2.tm_yday, l2.tm_hour, l2.tm_isdst);
    printf("difftime %.1f\n", difftime((time_t)100, (time_t)40));
}

static void g_random(void)
{
    unsigned char b[300];
    memset(b, 0, sizeof b);
    ssize_t r = getrandom(b, 64, 0);
    int nz = 0;
    for (int i = 0; i < 64; i++)
        nz |= b[i];
    printf("getrandom r=%zd nonzero=%d\n", r, nz != 0);
    memset(b, 0, sizeof b);
    int e = getentropy(b, 256);
    nz = 0;
    for (int i = 0; i < 256; i++)
        nz |= b[i];
    printf("getentropy r=%d nonzero=%d\n", e, nz != 0);
    errno = 0;
    e = getentropy(b, 257);
    printf("getentropy(257) r=%d %s\n", e, errname(errno));
    unsigned char c[32];
    getrandom(c, sizeof c, 0);
    printf("getrandom differs=%d\n", memcmp(b, c, sizeof c) != 0);
    srand(12345);
    int x1 = rand();
    srand(12345);
    printf("rand repeatable=%d range=%d\n", rand() == x1, x1 >= 0 && x1 <= RAND_MAX);
}

/* ------------------------------------------------------------------- main */

typedef struct {
    const char *name;
    void (*fn)(void);
} group;

static const group groups[] = {
    {"printf.int", g_printf_int},
    {"printf.str", g_printf_str},
    {"printf.ptr", g_printf_ptr},
    {"printf.float", g_printf_float},
    {"printf.n", g_printf_n},
    {"printf.snprintf", g_printf_snprintf},
    {"scanf", g_scanf},
    {"strtod", g_strtod},
    {"strtol", g_strtol},
    {"qsort", g_qsort},
    {"setjmp", g_setjmp},
    {"malloc", g_malloc},
    {"memalign", g_memalign},
    {"math.trig", g_math_trig},
    {"math.hyp", g_math_hyp},
    {"math.exp", g_math_exp},
    {"math.log", g_math_log},
    {"math.pow", g_math_pow},
    {"math.exact", g_math_exact},
    {"math.special", g_math_special},
    {"errno", g_errno},
    {"string", g_string},
    {"time", g_time},
    {"random", g_random},
};

static int selected(const char *sel, const char *name)
{
    if (!strcmp(sel, "all") || !strcmp(sel, name))
        return 1;
    size_t n = strlen(sel);
    return !strncmp(sel, name, n) && name[n] == '.';
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "-v"))) {
        fprintf(stderr, "usage: %s all|list|GROUP|PREFIX [-v]\n", argv[0]);
        return 2;
    }
    verbose = argc == 3;
    size_t ng = sizeof groups / sizeof groups[0];
    if (!strcmp(argv[1], "list")) {
        for (size_t i = 0; i < ng; i++)
            printf("%s\n", groups[i].name);
        return 0;
    }
    int any = 0;
    for (size_t i = 0; i < ng; i++) {
        if (!selected(argv[1], groups[i].name))
            continue;
        any = 1;
        rng_state = 0;
        for (const char *p = groups[i].name; *p; p++)
            rng_state = rng_state * 131 + (unsigned char)*p;
        printf("GROUP %s\n", groups[i].name);
        groups[i].fn();
        fflush(stdout); /* a crash in a later group keeps this one's output */
    }
    if (!any) {
        fprintf(stderr, "%s: no group '%s' (try: list)\n", argv[0], argv[1]);
        return 2;
    }
    printf("DONE\n");
    return fflush(stdout) ? 1 : 0;
}

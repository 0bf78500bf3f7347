/*
 * Compares the output of tests/libc/conformance.c built with musl (the guest,
 * run in the sandbox) against the same program built with the host's glibc
 * (the reference, generated at build time):
 *
 *   compare GUEST_OUTPUT REFERENCE_OUTPUT ARCH
 *
 * Prints one line per group of the reference, "PASS libc: <group> (<arch>)"
 * or "FAIL libc: <group> (<arch>): <first difference>", then one for the
 * whole output ("libc: complete": the guest reached DONE and printed nothing
 * before its first group and no group the reference lacks). Lines the program marks libc-specific
 * ("L key value -- reason") must agree in their key only; where their values
 * differ a "# libc-specific" note shows both. <math.h> lines ("M name <d|f><tol> values...") must agree
 * within tol units in the last place of the type (a zero's sign counts as one
 * unit, NaN matches NaN); the PASS line reports the worst difference. Every
 * other line must be identical. Exit status: 0 all passed, 1 a FAIL, 2 usage
 * or an unreadable file (with a FAIL line).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char **lines;
    size_t n;
    int used; /* guest group matched by a reference group */
} group;

typedef struct {
    group *g;
    size_t n;
    int done;       /* a DONE line after the last group */
    size_t preface; /* non-empty lines before the first GROUP */
    char *first;    /* the first of them */
} output;

static const char *arch;
static int failures;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            fclose(f);
            return NULL;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (len < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    for (size_t i = 0; i < len; i++) /* a NUL byte in the output: keep the lines whole */
        if (!buf[i])
            buf[i] = '\x01';
    return buf;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        printf("FAIL libc: compare (%s): out of memory\n", arch);
        exit(2);
    }
    return p;
}

/* Splits text (modified in place) into groups. */
static void parse(char *text, output *o)
{
    memset(o, 0, sizeof *o);
    group *cur = NULL;
    size_t cap = 0;
    char *p = text;
    while (*p) {
        char *line = p;
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = 0;
            p = nl + 1;
        } else
            p += strlen(p);
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[l - 1] = 0;
        if (!strncmp(line, "GROUP ", 6)) {
            o->g = xrealloc(o->g, (o->n + 1) * sizeof *o->g);
            cur = &o->g[o->n++];
            memset(cur, 0, sizeof *cur);
            cur->name = line + 6;
            cap = 0;
            o->done = 0;
            continue;
        }
        if (!strcmp(line, "DONE")) {
            o->done = 1;
            cur = NULL;
            continue;
        }
        if (!cur) {
            if (line[0] && !o->preface++)
                o->first = line;
            continue;
        }
        if (cur->n == cap) {
            cap = cap ? cap * 2 : 64;
            cur->lines = xrealloc(cur->lines, cap * sizeof *cur->lines);
        }
        cur->lines[cur->n++] = line;
    }
}

/* A line shortened for a message: around column col when it is long. */
static const char *clip(const char *s, size_t col, char *buf, size_t size)
{
    size_t len = strlen(s), from = 0, max = size - 8;
    if (len <= max) {
        snprintf(buf, size, "%s", s);
        return buf;
    }
    if (col > max / 2)
        from = col - max / 2;
    if (from + max > len)
        from = len - max;
    snprintf(buf, size, "%s%.*s%s", from ? "..." : "", (int)(max - 6), s + from,
             from + max - 6 < len ? "..." : "");
    return buf;
}

/* Ordered integer images of doubles and floats: adjacent values differ by 1,
 * +0 and -0 by 1. */
static int64_t ord_d(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    if (u >> 63)
        return -(int64_t)(u & ~(1ULL << 63)) - 1;
    return (int64_t)u;
}

static int64_t ord_f(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (u >> 31)
        return -(int64_t)(u & 0x7fffffffu) - 1;
    return (int64_t)u;
}

/* Distance in units in the last place; UINT64_MAX when incomparable. */
static uint64_t ulp_dist(const char *a, const char *b, int is_float, int *parse_err)
{
    int an = !strcmp(a, "nan"), bn = !strcmp(b, "nan");
    if (an || bn)
        return an && bn ? 0 : UINT64_MAX;
    char *ea, *eb;
    errno = 0;
    int64_t x, y;
    if (is_float) {
        float fa = strtof(a, &ea), fb = strtof(b, &eb);
        x = ord_f(fa);
        y = ord_f(fb);
    } else {
        double da = strtod(a, &ea), db = strtod(b, &eb);
        x = ord_d(da);
        y = ord_d(db);
    }
    if (*ea || *eb || ea == a || eb == b) {
        *parse_err = 1;
        return UINT64_MAX;
    }
    return x > y ? (uint64_t)x - (uint64_t)y : (uint64_t)y - (uint64_t)x;
}

/* Splits a line (copied) into space-separated tokens. */
static size_t tokens(const char *line, char **buf, char ***tok)
{
    *buf = xrealloc(NULL, strlen(line) + 1);
    strcpy(*buf, line);
    size_t n = 0, cap = 16;
    *tok = xrealloc(NULL, cap * sizeof **tok);
    for (char *s = strtok(*buf, " "); s; s = strtok(NULL, " ")) {
        if (n == cap) {
            cap *= 2;
            *tok = xrealloc(*tok, cap * sizeof **tok);
        }
        (*tok)[n++] = s;
    }
    return n;
}

typedef struct {
    uint64_t worst;
    char where[96];
} mstat;

/* Compares two M lines; returns 0 and updates st, or 1 with why filled. */
static int cmp_math(const char *gl, const char *rl, mstat *st, char *why, size_t whysz)
{
    char *gb, *rb, **gt, **rt;
    size_t gn = tokens(gl, &gb, &gt), rn = tokens(rl, &rb, &rt);
    int bad = 0;
    if (gn != rn || gn < 3 || strcmp(gt[1], rt[1]) || strcmp(gt[2], rt[2]) ||
        (rt[2][0] != 'd' && rt[2][0] != 'f')) {
        snprintf(why, whysz, "math line shape differs: guest has %zu values of %s %s, reference %zu of %s %s",
                 gn > 3 ? gn - 3 : 0, gn > 1 ? gt[1] : "?", gn > 2 ? gt[2] : "?", rn > 3 ? rn - 3 : 0,
                 rn > 1 ? rt[1] : "?", rn > 2 ? rt[2] : "?");
        bad = 1;
    } else {
        int is_float = rt[2][0] == 'f';
        uint64_t tol = strtoull(rt[2] + 1, NULL, 10);
        for (size_t i = 3; i < rn && !bad; i++) {
            int perr = 0;
            uint64_t d = ulp_dist(gt[i], rt[i], is_float, &perr);
            if (perr) {
                snprintf(why, whysz, "%s[%zu]: unparseable value: guest %s, reference %s", rt[1], i - 3, gt[i],
                         rt[i]);
                bad = 1;
            } else if (d > tol) {
                if (d == UINT64_MAX)
                    snprintf(why, whysz, "%s[%zu]: guest %s, reference %s (tolerance %" PRIu64 " ulp)", rt[1],
                             i - 3, gt[i], rt[i], tol);
                else
                    snprintf(why, whysz, "%s[%zu]: guest %s, reference %s: %" PRIu64 " ulp (tolerance %" PRIu64
                             " ulp)", rt[1], i - 3, gt[i], rt[i], d, tol);
                bad = 1;
            } else if (d > st->worst || !st->where[0]) {
                st->worst = d;
                snprintf(st->where, sizeof st->where, "%s[%zu]", rt[1], i - 3);
            }
        }
    }
    free(gb);
    free(rb);
    free(gt);
    free(rt);
    return bad;
}

/* The key of an L line: its second token. */
static size_t lkey_len(const char *l)
{
    const char *s = l + 2, *e = strchr(s, ' ');
    return (size_t)((e ? e : s + strlen(s)) - l);
}

static void compare_group(const group *g, const group *r)
{
    char why[1024] = "";
    char a[220], b[220];
    mstat st = {0, ""};
    int nmath = 0;
    size_t n = g->n > r->n ? g->n : r->n;
    for (size_t i = 0; i < n && !why[0]; i++) {
        if (i >= g->n) {
            snprintf(why, sizeof why, "line %zu: the guest's group ends early; reference: %s", i + 1,
                     clip(r->lines[i], 0, b, sizeof b));
            break;
        }
        if (i >= r->n) {
            snprintf(why, sizeof why, "line %zu: extra line in the guest output: %s", i + 1,
                     clip(g->lines[i], 0, a, sizeof a));
            break;
        }
        const char *gl = g->lines[i], *rl = r->lines[i];
        if (!strncmp(rl, "M ", 2) && !strncmp(gl, "M ", 2)) {
            nmath++;
            char w[600];
            if (cmp_math(gl, rl, &st, w, sizeof w))
                snprintf(why, sizeof why, "line %zu: %s", i + 1, w);
            continue;
        }
        if (!strncmp(rl, "L ", 2) && !strncmp(gl, "L ", 2)) {
            size_t kl = lkey_len(rl);
            if (kl != lkey_len(gl) || strncmp(gl, rl, kl)) {
                snprintf(why, sizeof why, "line %zu: libc-specific line for another check: guest %s, reference %s",
                         i + 1, clip(gl, 0, a, sizeof a), clip(rl, 0, b, sizeof b));
            } else if (strcmp(gl, rl)) {
                /* "L key value -- reason": one note with both values */
                const char *gr = strstr(gl, " -- "), *rr = strstr(rl, " -- ");
                int gvl = (int)((gr ? gr : gl + strlen(gl)) - (gl + kl));
                int rvl = (int)((rr ? rr : rl + strlen(rl)) - (rl + kl));
                printf("# libc-specific (%s) %s %.*s: guest%.*s, reference%.*s%s%s\n", arch, r->name,
                       (int)kl - 2, rl + 2, gvl > 160 ? 160 : gvl, gl + kl, rvl > 160 ? 160 : rvl, rl + kl,
                       rr ? " --" : "", rr ? rr + 3 : "");
            }
            continue;
        }
        if (strcmp(gl, rl)) {
            size_t col = 0;
            while (gl[col] && gl[col] == rl[col])
                col++;
            snprintf(why, sizeof why, "line %zu, column %zu: guest [%s] reference [%s]", i + 1, col + 1,
                     clip(gl, col, a, sizeof a), clip(rl, col, b, sizeof b));
        }
    }
    if (why[0]) {
        printf("FAIL libc: %s (%s): %s\n", r->name, arch, why);
        failures++;
    } else if (nmath)
        printf("PASS libc: %s (%s): %d math lines, worst %" PRIu64 " ulp at %s\n", r->name, arch, nmath,
               st.worst, st.where[0] ? st.where : "-");
    else
        printf("PASS libc: %s (%s)\n", r->name, arch);
}

static void free_output(output *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->g[i].lines);
    free(o->g);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s GUEST_OUTPUT REFERENCE_OUTPUT ARCH\n", argv[0]);
        return 2;
    }
    arch = argv[3];
    char *gt = read_file(argv[1]), *rt = read_file(argv[2]);
    if (!gt || !rt) {
        printf("FAIL libc: compare (%s): cannot read %s\n", arch, !gt ? argv[1] : argv[2]);
        free(gt);
        free(rt);
        return 2;
    }
    output go, ro;
    parse(gt, &go);
    parse(rt, &ro);
    if (ro.n == 0 || !ro.done) {
        printf("FAIL libc: reference (%s): %s is not a complete conformance output (%zu groups%s)\n", arch,
               argv[2], ro.n, ro.done ? "" : ", no DONE");
        free_output(&go);
        free_output(&ro);
        free(gt);
        free(rt);
        return 1;
    }
    for (size_t i = 0; i < ro.n; i++) {
        group *g = NULL;
        for (size_t j = 0; j < go.n && !g; j++)
            if (!go.g[j].used && !strcmp(go.g[j].name, ro.g[i].name))
                g = &go.g[j];
        if (!g) {
            if (go.n)
                printf("FAIL libc: %s (%s): missing from the guest output (its last group: %s)\n", ro.g[i].name,
                       arch, go.g[go.n - 1].name);
            else
                printf("FAIL libc: %s (%s): missing from the guest output (it has no group at all)\n",
                       ro.g[i].name, arch);
            failures++;
            continue;
        }
        g->used = 1;
        compare_group(g, &ro.g[i]);
    }
    size_t extra = 0;
    const char *extra_name = NULL;
    for (size_t j = 0; j < go.n; j++)
        if (!go.g[j].used) {
            extra++;
            extra_name = go.g[j].name;
        }
    if (!go.done) {
        printf("FAIL libc: complete (%s): no DONE line after the guest's last group (%s): it did not finish\n",
               arch, go.n ? go.g[go.n - 1].name : "none");
        failures++;
    } else if (go.preface) {
        char a[220];
        printf("FAIL libc: complete (%s): %zu line(s) before the guest's first GROUP line, the first: %s\n", arch,
               go.preface, clip(go.first, 0, a, sizeof a));
        failures++;
    } else if (extra) {
        printf("FAIL libc: complete (%s): %zu group(s) the reference lacks, e.g. %s\n", arch, extra, extra_name);
        failures++;
    } else
        printf("PASS libc: complete (%s): %zu groups\n", arch, go.n);
    free_output(&go);
    free_output(&ro);
    free(gt);
    free(rt);
    return failures ? 1 : 0;
}

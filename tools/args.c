/* Command-line options and typed values. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char OPT_HELP[] =
    "Options:\n"
    "  --timeout-ms N   stop a guest call after N milliseconds (0 = no limit, default)\n"
    "  --heap SIZE      guest heap (default 1M)\n"
    "  --scratch SIZE   scratch memory, the guest's only writable memory (default 16M)\n"
    "  --stack SIZE     guest stack (default 256K)\n"
    "  --input SIZE     host->guest message buffer (default 64K)\n"
    "  --output SIZE    guest->host message buffer (default 64K)\n"
    "  --init-data FILE the bytes of FILE become the guest's init data (sl_init_data)\n"
    "  --init-data-size SIZE\n"
    "                   the init data's size: at least FILE's, the rest zero (room for\n"
    "                   the data to grow; default FILE's size; without --init-data:\n"
    "                   SIZE zero bytes)\n"
    "  --init-data-perm r|rw|rx|rwx\n"
    "                   how the guest may use it (default r: read-only; with w, writes\n"
    "                   are the sandbox's private copies, undone by a restore)\n"
    "  --quiet          drop the guest's prints (normally on stderr as \"[guest] ...\")\n"
    "  --help           this text\n"
    "SIZE is a number of bytes, decimal or 0x hex, with an optional K, M or G suffix\n"
    "(powers of 1024). Size and init-data options do not apply to a snapshot file\n"
    "GUEST.\n";

/* Parses an unsigned integer, decimal or 0x hex, the whole string; rejects
 * overflow. `*end` is where the digits stopped (for suffixes). */
static int parse_uint(const char *s, uint64_t *out, const char **end)
{
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    uint64_t v = 0;
    const char *p = s;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A' + 10);
        else
            break;
        if (v > (UINT64_MAX - d) / base)
            return -1;
        v = v * base + d;
    }
    if (p == s)
        return -1;
    *out = v;
    *end = p;
    return 0;
}

int parse_u64_dec(const char *s, uint64_t *out)
{
    const char *end;
    return parse_uint(s, out, &end) == 0 && *end == 0 ? 0 : -1;
}

int parse_size(const char *s, uint64_t *out)
{
    const char *end;
    uint64_t v;
    if (parse_uint(s, &v, &end) != 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0:
        break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default:
        return -1;
    }
    if (*end != 0)
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

/* Matches "--name" or "--name=value"; sets *val to the inline value or NULL. */
static int opt_match(const char *arg, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == 0) {
        *val = NULL;
        return 1;
    }
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    return 0;
}

static const char *opt_value(const char *name, const char *inl, int argc, char **argv, int *i)
{
    if (inl)
        return inl;
    if (*i + 1 >= argc) {
        cli_err("%s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

int opt_string(const char *name, int argc, char **argv, int *i, const char **val)
{
    const char *inl;
    if (!opt_match(argv[*i], name, &inl))
        return 0;
    return (*val = opt_value(name, inl, argc, argv, i)) ? 1 : -1;
}

void opt_pair(const char *cmd, const char *flag, const char *alias, int argc, char **argv, pair_args *a)
{
    const char *v;
    int opts = 1, r;
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (opts && strcmp(arg, "--") == 0) {
            opts = 0;
        } else if (opts && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            a->help = 1;
        } else if (opts && ((flag && strcmp(arg, flag) == 0) || (alias && strcmp(arg, alias) == 0))) {
            a->flag = 1;
        } else if (opts && (r = opt_string("--parent", argc, argv, &i, &v)) != 0) {
            a->bad |= r < 0;
            a->parents = v;
        } else if (a->npos == 2 || (opts && arg[0] == '-' && arg[1] != '\0')) {
            if (!a->bad)
                cli_err("snapshot %s: unexpected argument '%s'", cmd, arg);
            a->bad = 1;
        } else {
            a->pos[a->npos++] = arg;
        }
    }
}

/* One common option: how it is spelled and what its value sets. A setter
 * returns 0, or -1 after printing why the value is wrong. */
typedef struct opt_def opt_def;
struct opt_def {
    const char *name, *alias; /* alias: a one-letter flag, or NULL */
    int takes_value;          /* 0: a flag, matched exactly; 1: --name VALUE or --name=VALUE */
    int (*set)(cli_opts *o, const opt_def *d, const char *val);
    size_t off; /* the cli_opts field that set_flag or set_size sets */
};

/* SIZE options share one range: a guest's memory, at most SL_MAX_MEMORY. */
static int opt_size(const char *name, const char *val, uint64_t *v)
{
    if (parse_size(val, v) != 0 || *v == 0 || *v > SL_MAX_MEMORY) {
        cli_err("%s: '%s' is not a size (bytes with optional K/M/G, at most 16G)", name, val);
        return -1;
    }
    return 0;
}

static int set_flag(cli_opts *o, const opt_def *d, const char *val)
{
    (void)val;
    *(int *)((char *)o + d->off) = 1;
    return 0;
}

static int set_timeout(cli_opts *o, const opt_def *d, const char *val)
{
    (void)d;
    if (parse_u64_dec(val, &o->timeout_ms) != 0) {
        cli_err("--timeout-ms: '%s' is not a number of milliseconds", val);
        return -1;
    }
    return 0;
}

static int set_size(cli_opts *o, const opt_def *d, const char *val)
{
    uint64_t v;
    if (opt_size(d->name, val, &v) != 0)
        return -1;
    memcpy((char *)o + d->off, &v, sizeof v);
    o->sizes_given = 1;
    return 0;
}

static int set_init_data(cli_opts *o, const opt_def *d, const char *val)
{
    (void)d;
    if (!*val) {
        cli_err("--init-data: an empty file name");
        return -1;
    }
    o->init_data_path = val;
    o->init_given = 1;
    return 0;
}

static int set_init_data_size(cli_opts *o, const opt_def *d, const char *val)
{
    uint64_t v;
    if (opt_size(d->name, val, &v) != 0)
        return -1;
    o->init_data_size = v;
    o->init_given = 1;
    return 0;
}

static int set_init_data_perm(cli_opts *o, const opt_def *d, const char *val)
{
    (void)d;
    static const struct {
        const char *name;
        unsigned perm;
    } perms[] = {{"r", SL_PERM_READ},
                 {"rw", SL_PERM_READ | SL_PERM_WRITE},
                 {"rx", SL_PERM_READ | SL_PERM_EXEC},
                 {"rwx", SL_PERM_READ | SL_PERM_WRITE | SL_PERM_EXEC}};
    o->init_data_perm = 0;
    for (size_t k = 0; k < sizeof perms / sizeof perms[0]; k++)
        if (strcmp(val, perms[k].name) == 0)
            o->init_data_perm = perms[k].perm;
    if (!o->init_data_perm) {
        cli_err("--init-data-perm: '%s' is not r, rw, rx or rwx", val);
        return -1;
    }
    o->init_given = 1;
    return 0;
}

static const opt_def OPTS[] = {
    {"--help", "-h", 0, set_flag, offsetof(cli_opts, help)},
    {"--quiet", "-q", 0, set_flag, offsetof(cli_opts, quiet)},
    {"--timeout-ms", NULL, 1, set_timeout, 0},
    {"--heap", NULL, 1, set_size, offsetof(cli_opts, cfg.heap_size)},
    {"--scratch", NULL, 1, set_size, offsetof(cli_opts, cfg.scratch_size)},
    {"--stack", NULL, 1, set_size, offsetof(cli_opts, cfg.stack_size)},
    {"--input", NULL, 1, set_size, offsetof(cli_opts, cfg.input_size)},
    {"--output", NULL, 1, set_size, offsetof(cli_opts, cfg.output_size)},
    {"--init-data", NULL, 1, set_init_data, 0},
    {"--init-data-size", NULL, 1, set_init_data_size, 0},
    {"--init-data-perm", NULL, 1, set_init_data_perm, 0},
};

int opt_take(cli_opts *o, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *inl, *val = NULL;
    for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++) {
        const opt_def *d = &OPTS[k];
        if (!d->takes_value) {
            if (strcmp(arg, d->name) != 0 && !(d->alias && strcmp(arg, d->alias) == 0))
                continue;
        } else {
            if (!opt_match(arg, d->name, &inl))
                continue;
            if (!(val = opt_value(d->name, inl, argc, argv, i)))
                return EXIT_USAGE;
        }
        return d->set(o, d, val) == 0 ? 1 : EXIT_USAGE;
    }
    if (arg[0] == '-' && arg[1] == '-' && arg[2] != 0) {
        cli_err("unknown option '%s' (use -- before an argument that starts with --)", arg);
        return EXIT_USAGE;
    }
    return 0;
}

/* opt_scan's walk over argv; -1 after printing why. */
static int opt_operands(cli_opts *o, int argc, char **argv, int (*operand)(void *user, char *arg), void *user)
{
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        if (!opts_done && strcmp(argv[i], "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && strcmp(argv[i], "--json") == 0)
            continue;
        if (!opts_done) {
            int r = opt_take(o, argc, argv, &i);
            if (r == EXIT_USAGE)
                return -1;
            if (r == 1)
                continue;
        }
        if (operand(user, argv[i]) != 0)
            return -1;
    }
    return 0;
}

int opt_scan(cli_opts *o, int argc, char **argv, int (*operand)(void *user, char *arg), void *user,
             void (*usage)(int fd))
{
    o->json = json_wanted(argc, argv);
    if (opt_operands(o, argc, argv, operand, user) != 0) {
        usage(2);
        return EXIT_USAGE;
    }
    if (o->help) {
        usage(1);
        return EXIT_OK;
    }
    if (opt_finish(o) != 0) {
        usage(2);
        return EXIT_USAGE;
    }
    return -1;
}

int opt_finish(const cli_opts *o)
{
    if (o->init_data_perm && !o->init_data_path && !o->init_data_size) {
        cli_err("--init-data-perm needs init data (--init-data FILE or --init-data-size SIZE)");
        return EXIT_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------------ values */

static int parse_int(int type, const char *s, sl_value *v)
{
    int neg = 0;
    const char *p = s, *end;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    uint64_t mag;
    if (parse_uint(p, &mag, &end) != 0 || *end != 0)
        return -1;
    switch (type) {
    case SL_TYPE_I32:
        if (neg ? mag > (uint64_t)INT32_MAX + 1 : mag > INT32_MAX)
            return -1;
        v->v.i32 = neg ? (int32_t)(0 - (int64_t)mag) : (int32_t)mag;
        return 0;
    case SL_TYPE_I64:
        if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > INT64_MAX)
            return -1;
        v->v.i64 = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        return 0;
    case SL_TYPE_U32:
        if ((neg && mag) || mag > UINT32_MAX)
            return -1;
        v->v.u32 = (uint32_t)mag;
        return 0;
    default: /* U64 */
        if (neg && mag)
            return -1;
        v->v.u64 = mag;
        return 0;
    }
}

static int parse_float(int type, const char *s, sl_value *v)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end != 0)
        return -1;
    /* Overflow to infinity from a finite literal is an error, not a value. */
    if (errno == ERANGE && isinf(d))
        return -1;
    if (type == SL_TYPE_F64) {
        v->v.f64 = d;
        return 0;
    }
    float f = (float)d;
    if (isinf(f) && !isinf(d))
        return -1;
    v->v.f32 = f;
    return 0;
}

static int parse_hex_bytes(const char *s, sl_value *v, void **store)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    size_t n = strlen(s);
    if (n % 2)
        return -1;
    unsigned char *b = malloc(n / 2 + 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = isxdigit((unsigned char)s[2 * i]), lo = isxdigit((unsigned char)s[2 * i + 1]);
        if (!hi || !lo) {
            free(b);
            return -1;
        }
        char pair[3] = {s[2 * i], s[2 * i + 1], 0};
        b[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    *store = b;
    v->v.buf.ptr = b;
    v->v.buf.len = n / 2;
    return 0;
}

int value_parse(int type, const char *text, sl_value *v, void **store, char *why, size_t whylen)
{
    memset(v, 0, sizeof *v);
    v->type = type;
    *store = NULL;
    int rc = -1;
    const char *expect = "";
    switch (type) {
    case SL_TYPE_I32:
    case SL_TYPE_U32:
    case SL_TYPE_I64:
    case SL_TYPE_U64:
        rc = parse_int(type, text, v);
        expect = type == SL_TYPE_I32   ? "a decimal or 0x hex integer in [-2147483648, 2147483647]"
                 : type == SL_TYPE_U32 ? "a decimal or 0x hex integer in [0, 4294967295]"
                 : type == SL_TYPE_I64 ? "a decimal or 0x hex 64-bit signed integer"
                                       : "a decimal or 0x hex integer in [0, 18446744073709551615]";
        break;
    case SL_TYPE_F32:
    case SL_TYPE_F64:
        rc = parse_float(type, text, v);
        expect = type == SL_TYPE_F32 ? "a number that fits a 32-bit float" : "a number";
        break;
    case SL_TYPE_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
            v->v.b = 1, rc = 0;
        else if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
            v->v.b = 0, rc = 0;
        expect = "true, false, 1 or 0";
        break;
    case SL_TYPE_STRING:
        v->v.buf.ptr = text;
        v->v.buf.len = strlen(text);
        rc = 0;
        break;
    case SL_TYPE_BYTES:
        rc = parse_hex_bytes(text, v, store);
        expect = "hex digits, two per byte (optionally 0x-prefixed)";
        break;
    default:
        expect = "a type this CLI cannot pass";
        break;
    }
    if (rc != 0)
        snprintf(why, whylen, "'%s' is not %s", text, expect);
    return rc;
}

void value_print(int fd, const sl_value *v, int void_text)
{
    char buf[64];
    switch (v->type) {
    case SL_TYPE_VOID:
        if (void_text)
            out_printf(fd, "ok\n");
        return;
    case SL_TYPE_I32: snprintf(buf, sizeof buf, "%" PRId32, v->v.i32); break;
    case SL_TYPE_U32: snprintf(buf, sizeof buf, "%" PRIu32, v->v.u32); break;
    case SL_TYPE_I64: snprintf(buf, sizeof buf, "%" PRId64, v->v.i64); break;
    case SL_TYPE_U64: snprintf(buf, sizeof buf, "%" PRIu64, v->v.u64); break;
    case SL_TYPE_F32: snprintf(buf, sizeof buf, "%g", (double)v->v.f32); break;
    case SL_TYPE_F64: snprintf(buf, sizeof buf, "%g", v->v.f64); break;
    case SL_TYPE_BOOL: snprintf(buf, sizeof buf, "%s", v->v.b ? "true" : "false"); break;
    case SL_TYPE_STRING: {
        /* One write with the newline so a result is never split. */
        size_t n = v->v.buf.len;
        char *s = malloc(n + 1);
        if (!s)
            return;
        if (n)
            memcpy(s, v->v.buf.ptr, n);
        s[n] = '\n';
        out_write(fd, s, n + 1);
        free(s);
        return;
    }
    case SL_TYPE_BYTES: {
        size_t n = v->v.buf.len;
        char *s = malloc(2 * n + 1);
        if (!s)
            return;
        const unsigned char *b = v->v.buf.ptr;
        for (size_t i = 0; i < n; i++) {
            s[2 * i] = "0123456789abcdef"[b[i] >> 4];
            s[2 * i + 1] = "0123456789abcdef"[b[i] & 15];
        }
        s[2 * n] = '\n';
        out_write(fd, s, 2 * n + 1);
        free(s);
        return;
    }
    default:
        snprintf(buf, sizeof buf, "<value of unknown type %d>", v->type);
        break;
    }
    out_printf(fd, "%s\n", buf);
}

void signature_format(char *buf, size_t len, const char *name, int ret, const int *params, size_t n)
{
    size_t off = 0;
    int w = snprintf(buf, len, "%s(", name);
    if (w < 0)
        return;
    off = (size_t)w < len ? (size_t)w : len;
    for (size_t i = 0; i < n && off < len; i++) {
        w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", sl_type_name(params[i]));
        if (w < 0)
            return;
        off += (size_t)w < len - off ? (size_t)w : len - off;
    }
    if (off < len)
        snprintf(buf + off, len - off, ") -> %s", sl_type_name(ret));
}

/* `sandlet snapshot diff [--json] [--parent LIST] A B`: what differs between two snapshot
 * files, by address space and guest virtual range (sl_snapshot_diff), as
 * one line per range and a summary line, or as one JSON object. Exit 0 when
 * nothing differs and 1 when something does, as diff(1) and cmp(1) do. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const kind_name[] = {"", "added", "removed", "changed", "permissions"};

/* Pages of each SL_DIFF_* kind, and the JSON being built (when --json). */
typedef struct diff_out {
    uint64_t pages[5];
    jw *json;
} diff_out;

/* A page's mapping as inspect prints it: "cow r-- user". */
static void perm_text(unsigned p, char out[16])
{
    const char *kind = p & SL_PERM_COW ? "cow" : p & SL_PERM_WRITE ? "rw" : "ro";
    snprintf(out, 16, "%s r%c%c%s", kind, p & SL_PERM_WRITE ? 'w' : '-', p & SL_PERM_EXEC ? 'x' : '-',
             p & SL_PERM_USER ? " user" : "");
}

/* {"kind":"cow","perm":"r--","user":true}, or null for the side that does
 * not map the range. */
static void perm_json(jw *w, const char *k, unsigned p)
{
    if (!p) {
        jw_null(w, k);
        return;
    }
    char text[16], perm[4] = {'r', p & SL_PERM_WRITE ? 'w' : '-', p & SL_PERM_EXEC ? 'x' : '-', 0};
    perm_text(p, text);
    *strchr(text, ' ') = 0;
    jw_open(w, k, '{');
    jw_str(w, "kind", text);
    jw_str(w, "perm", perm);
    jw_bool(w, "user", (p & SL_PERM_USER) != 0);
    jw_close(w, '}');
}

/* The end of a range as text: 2^64 for one that ends at the top of the
 * amd64 address space. */
static void end_text(const sl_diff_range *r, char out[24], int pad)
{
    uint64_t end = r->start + r->size;
    if (end == 0 && r->size)
        snprintf(out, 24, pad ? "0x0000000000000000" : "0x10000000000000000");
    else
        snprintf(out, 24, pad ? "0x%016" PRIx64 : "0x%" PRIx64, end);
}

static int on_range(void *user, const sl_diff_range *r)
{
    diff_out *o = user;
    uint64_t pages = r->size / 4096;
    o->pages[r->kind] += pages;
    char a[16], b[16], end[24];
    if (o->json) {
        jw *w = o->json;
        char start[24];
        snprintf(start, sizeof start, "0x%" PRIx64, r->start);
        end_text(r, end, 0);
        jw_open(w, NULL, '{');
        jw_u64(w, "space", r->space);
        jw_str(w, "kind", kind_name[r->kind]);
        jw_str(w, "start", start);
        jw_str(w, "end", end);
        jw_u64(w, "pages", pages);
        perm_json(w, "in_a", r->perm_a);
        perm_json(w, "in_b", r->perm_b);
        jw_close(w, '}');
        return 0;
    }
    perm_text(r->perm_a ? r->perm_a : r->perm_b, a);
    perm_text(r->perm_b, b);
    end_text(r, end, 1);
    out_printf(1, "space %u %-11s 0x%016" PRIx64 "-%s (%" PRIu64 " page%s) %s%s%s\n", r->space, kind_name[r->kind],
               r->start, end, pages, pages == 1 ? "" : "s", a, r->perm_a && r->perm_b && r->perm_a != r->perm_b ? " -> " : "",
               r->perm_a && r->perm_b && r->perm_a != r->perm_b ? b : "");
    return 0;
}

static const char *last_err(void)
{
    int code;
    return cli_last_err(&code);
}

static void diff_json_error(const char *fa, const char *fb, const char *msg, int code, int exit_code)
{
    json_error_files("a", fa, "b", fb, msg, code, exit_code);
}

/* Loads both files (a child with its chain, looked for in parents first),
 * diffs them and prints the ranges (the JSON object is built in w and
 * printed by the caller). Returns the exit code. */
static int diff_files(const char *fa, const char *fb, const char *parents, diff_out *o, int json)
{
    sl_snapshot *s[2] = {NULL, NULL};
    const char *files[2] = {fa, fb};
    char err[ERR_MAX] = "";
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        if ((rc = sl_snapshot_load_chain(&s[i], files[i], parents, err, sizeof err)) != 0) {
            cli_errc(rc, "%s: %s", files[i], err[0] ? err : sl_strerror(rc));
            if (json)
                diff_json_error(fa, fb, last_err(), rc, EXIT_SETUP);
        }
    if (!rc && (rc = sl_snapshot_diff(s[0], s[1], on_range, o, err, sizeof err)) != 0) {
        cli_errc(rc, "snapshot diff %s %s: %s", fa, fb, err[0] ? err : sl_strerror(rc));
        if (json)
            diff_json_error(fa, fb, last_err(), rc, EXIT_SETUP);
    }
    sl_snapshot_free(s[0]);
    sl_snapshot_free(s[1]);
    return rc ? EXIT_SETUP : EXIT_OK;
}

int snap_diff(int argc, char **argv, void (*usage)(int fd))
{
    pair_args a;
    opt_pair("diff", "--json", NULL, argc, argv, &a);
    const char **pos = a.pos, *parents = a.parents;
    int json = a.flag, bad = a.bad;
    if (a.help) {
        usage(1);
        return EXIT_OK;
    }
    if (!bad && a.npos != 2) {
        cli_err("snapshot diff: two snapshot files A and B are required");
        bad = 1;
    }
    if (bad) {
        usage(2);
        if (json)
            diff_json_error(pos[0], pos[1], last_err(), 0, EXIT_USAGE);
        return EXIT_USAGE;
    }
    jw w = {0};
    diff_out o = {.json = json ? &w : NULL};
    if (json) {
        jw_open(&w, NULL, '{');
        jw_bool(&w, "ok", 1);
        jw_str(&w, "a", pos[0]);
        jw_str(&w, "b", pos[1]);
        jw_open(&w, "ranges", '[');
    }
    int rc = diff_files(pos[0], pos[1], parents, &o, json);
    uint64_t *p = o.pages;
    int differ = p[SL_DIFF_ADDED] || p[SL_DIFF_REMOVED] || p[SL_DIFF_CHANGED] || p[SL_DIFF_PERM];
    if (rc == EXIT_OK && json) {
        jw_close(&w, ']');
        jw_bool(&w, "differ", differ);
        jw_open(&w, "pages", '{');
        jw_u64(&w, "added", p[SL_DIFF_ADDED]);
        jw_u64(&w, "removed", p[SL_DIFF_REMOVED]);
        jw_u64(&w, "changed", p[SL_DIFF_CHANGED]);
        jw_u64(&w, "permissions", p[SL_DIFF_PERM]);
        jw_close(&w, '}');
        jw_close(&w, '}');
        jw_emit(&w, 1);
    } else if (rc == EXIT_OK) {
        out_printf(1, "pages: %" PRIu64 " added, %" PRIu64 " removed, %" PRIu64 " changed, %" PRIu64
                      " permissions changed\n",
                   p[SL_DIFF_ADDED], p[SL_DIFF_REMOVED], p[SL_DIFF_CHANGED], p[SL_DIFF_PERM]);
    }
    free(w.p);
    /* Exit 1 is an answer, not a failure: an answer that never reached
     * stdout is exit 3 (main says why), whatever it was. */
    if (rc == EXIT_OK && out_stdout_error())
        return EXIT_SETUP;
    return rc != EXIT_OK ? rc : differ ? EXIT_FAIL : EXIT_OK;
}

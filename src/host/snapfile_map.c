/* The address map of `inspect` (snapfile_inspect.h): a walk of every
 * address space's page tables in the loaded file, described as ranges of
 * GVAs with one kind, permission and backing each (text lines or JSON). */
#include "snapfile_inspect.h"

#include <inttypes.h>
#include <stdlib.h>

#include "pt.h"
#include "pt_owners.h"
#include "snapgpa.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define MAP_LINES_MAX 4096u /* per address space; a hostile table could make millions */

/* Indexed by enum sl_backing (snapgpa.h). */
static const char *const backing_name[] = {"blob", "page tables", "scratch", "unbacked"};
static const char *const backing_json[] = {"blob", "page_tables", "scratch", "none"};

typedef struct range {
    bool open;
    uint64_t start, end; /* [start, end) */
    uint8_t kind;
    bool w, x, u;
    enum sl_backing bk;
    bool scratch_window;
} range;

typedef struct inspector {
    const sl_snapshot *s;
    sl_line_fn line;
    void *user;
    sl_jout *json;       /* JSON instead of text lines */
    unsigned next_space; /* JSON: the next address space object to open */
    bool first_item;     /* JSON: no range written yet in the open space */
    unsigned cur_root;
    bool started;
    range r;
    uint64_t lines, dropped;
    sl_pt_owners tables; /* walk bookkeeping: which tables were reached, from where */
    const sl_perm *leaf_perm; /* of the leaf being cut into pieces */
} inspector;

static void flush_range(inspector *in)
{
    range *r = &in->r;
    if (!r->open)
        return;
    r->open = false;
    if (in->lines >= MAP_LINES_MAX) {
        in->dropped++;
        return;
    }
    in->lines++;
    uint64_t pages = (r->end - r->start) / SL_PAGE_SIZE;
    if (in->json) {
        sl_jout *j = in->json;
        sl_jput(j, "%s{\"start\":\"0x%" PRIx64 "\",\"end\":\"", in->first_item ? "" : ",", r->start);
        /* A range that ends at the top of the amd64 space: its end is 2^64. */
        if (r->end == 0)
            sl_jput(j, "0x10000000000000000\"");
        else
            sl_jput(j, "0x%" PRIx64 "\"", r->end);
        in->first_item = false;
        if (r->scratch_window) {
            sl_jput(j, ",\"pages\":%" PRIu64 ",\"kind\":\"scratch_window\"}", pages);
            return;
        }
        const char *kind = r->kind == SL_MAP_COW ? "cow" : r->kind == SL_MAP_BASIC && r->w ? "rw" : "ro";
        sl_jput(j, ",\"pages\":%" PRIu64 ",\"kind\":\"%s\",\"perm\":\"r%c%c\",\"user\":%s,\"backing\":\"%s\"}", pages,
             kind, r->w ? 'w' : '-', r->x ? 'x' : '-', r->u ? "true" : "false", backing_json[r->bk]);
        return;
    }
    if (r->scratch_window) {
        sl_inspect_emit(in->line, in->user, "  0x%016" PRIx64 "-0x%016" PRIx64 " scratch window (%" PRIu64 " pages, not in the file)",
             r->start, r->end, pages);
        return;
    }
    const char *kind = r->kind == SL_MAP_COW ? "cow" : "ro ";
    if (r->kind == SL_MAP_BASIC && r->w)
        kind = "rw ";
    sl_inspect_emit(in->line, in->user, "  0x%016" PRIx64 "-0x%016" PRIx64 " %s r%c%c%s %s (%" PRIu64 " page%s)", r->start, r->end,
         kind, r->w ? 'w' : '-', r->x ? 'x' : '-', r->u ? " user" : "", backing_name[r->bk], pages,
         pages == 1 ? "" : "s");
}

/* Appends [gva, gva + len) to the open range when it continues it with the
 * same description, else flushes that range and opens a new one. `end` is
 * exclusive and wraps to 0 for a piece that ends at the top of the amd64
 * space; nothing continues such a range. */
static void add_piece(inspector *in, uint64_t gva, uint64_t len, const sl_perm *p, enum sl_backing bk, bool win)
{
    range nr = {.open = true, .start = gva, .end = gva + len, .kind = p->kind, .w = p->writable,
                .x = p->executable, .u = p->user, .bk = bk, .scratch_window = win};
    range *r = &in->r;
    bool same = r->open && r->end != 0 && r->end == nr.start &&
                (win ? r->scratch_window
                     : (!r->scratch_window && r->kind == nr.kind && r->w == nr.w && r->x == nr.x && r->u == nr.u &&
                        r->bk == nr.bk));
    if (same) {
        r->end = nr.end;
    } else {
        flush_range(in);
        *r = nr;
    }
}

/* JSON: closes the open address space object (its ranges array). */
static void json_space_close(inspector *in)
{
    if (in->next_space == 0)
        return;
    sl_jput(in->json, "],\"more_ranges\":%" PRIu64 "}", in->dropped);
}

/* JSON: opens the object of every address space up to `root` (a space the
 * walk never reaches, empty or sharing another's root, still gets one). */
static void json_spaces_to(inspector *in, unsigned root)
{
    const sl_snapshot *s = in->s;
    while (in->next_space <= root && in->next_space < s->n_roots) {
        json_space_close(in);
        unsigned i = in->next_space++;
        int same = -1;
        for (unsigned k = 0; k < i && same < 0; k++)
            if (s->roots[k] == s->roots[i])
                same = (int)k;
        sl_jput(in->json, "%s{\"index\":%u,\"root\":\"0x%" PRIx64 "\",\"current\":%s,\"same_root_as\":", i ? "," : "", i,
             s->roots[i], i == s->cur_root ? "true" : "false");
        if (same >= 0)
            sl_jput(in->json, "%d", same);
        else
            sl_jput(in->json, "null");
        sl_jput(in->json, ",\"ranges\":[");
        in->first_item = true;
        in->lines = in->dropped = 0;
    }
}

static void space_header(inspector *in, unsigned root)
{
    flush_range(in);
    if (in->json) {
        in->started = true;
        in->cur_root = root;
        json_spaces_to(in, root);
        return;
    }
    if (in->started && in->dropped)
        sl_inspect_emit(in->line, in->user, "  ... %" PRIu64 " more ranges", in->dropped);
    in->started = true;
    in->cur_root = root;
    in->lines = in->dropped = 0;
    sl_inspect_emit(in->line, in->user, "address space %u (root table at GPA 0x%" PRIx64 ")%s:", root, in->s->roots[root],
         root == in->s->cur_root ? " current" : "");
}

static bool insp_piece(void *arg, uint64_t gva, uint64_t gpa, uint64_t len, enum sl_backing bk, bool win)
{
    (void)gpa;
    inspector *in = arg;
    add_piece(in, gva, len, in->leaf_perm, bk, win);
    return true;
}

static bool insp_visit(void *arg, const sl_walk_item *it)
{
    inspector *in = arg;
    const sl_snapshot *s = in->s;
    if (!in->started || it->root != in->cur_root)
        space_header(in, it->root);
    if (it->kind == SL_WALK_ANOTHER_SPACE) {
        flush_range(in);
        if (in->lines < MAP_LINES_MAX && in->json) {
            in->lines++;
            sl_jput(in->json,
                 "%s{\"start\":\"0x%" PRIx64 "\",\"kind\":\"shared_table\",\"level\":%u,\"shared_with\":%u,"
                 "\"shared_va\":\"0x%" PRIx64 "\"}",
                 in->first_item ? "" : ",", it->our_va, it->depth + 1, it->owner_root, it->their_va);
            in->first_item = false;
        } else if (in->lines < MAP_LINES_MAX) {
            in->lines++;
            sl_inspect_emit(in->line, in->user, "  0x%016" PRIx64 " level-%u table shared with address space %u (its VA 0x%" PRIx64 ")",
                 it->our_va, it->depth + 1, it->owner_root, it->their_va);
        } else {
            in->dropped++;
        }
        return true;
    }
    /* A leaf of any size is described piece by piece, as compaction copies
     * it page by page. */
    in->leaf_perm = &it->map.perm;
    sl_snapgpa_pieces(s, &it->map, insp_piece, in);
    return true;
}

void sl_inspect_map(const sl_snapshot *s, sl_line_fn line, void *user, sl_jout *json)
{
    inspector in = {.s = s, .line = line, .user = user, .json = json};
    sl_pt_owners_init(&in.tables, 0);
    sl_pt_mem m = sl_snapgpa_mem(s);
    sl_pt_seen seen = sl_pt_owners_seen(&in.tables);
    /* A root listed twice shares the first one's tables: the walk skips it. */
    for (unsigned i = 0; i < s->n_roots && !json; i++)
        for (unsigned j = 0; j < i; j++)
            if (s->roots[j] == s->roots[i]) {
                sl_inspect_emit(line, user, "address space %u uses the same root table as address space %u", i, j);
                break;
            }
    if (json)
        sl_jput(json, ",\"spaces\":[");
    int rc = sl_pt_walk_spaces(s->arch, &m, s->roots, s->n_roots, &seen, insp_visit, &in);
    flush_range(&in);
    if (json) {
        json_spaces_to(&in, s->n_roots - 1);
        json_space_close(&in);
        sl_jput(json, "],\"walk_error\":");
        if (rc)
            sl_jput(json, "%d", rc);
        else
            sl_jput(json, "null");
    } else {
        if (in.dropped)
            sl_inspect_emit(line, user, "  ... %" PRIu64 " more ranges", in.dropped);
        if (rc)
            sl_inspect_emit(line, user, "(page-table walk stopped: error %d)", rc);
    }
    sl_pt_owners_free(&in.tables);
}

/* The address map of `inspect` (snapfile_inspect.h): a walk of every
 * address space's page tables in the loaded file, described as ranges of
 * GVAs with one kind, permission and backing each (text lines or JSON). */
#include "snapfile_inspect.h"

#include <inttypes.h>
#include <stdlib.h>

#include "pt.h"
#include "pt_owners.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

#define MAP_LINES_MAX 4096u /* per address space; a hostile table could make millions */

enum backing { BK_BLOB, BK_TABLES, BK_SCRATCH, BK_NONE };
static const char *const backing_name[] = {"blob", "page tables", "scratch", "unbacked"};
static const char *const backing_json[] = {"blob", "page_tables", "scratch", "none"};

typedef struct range {
    bool open;
    uint64_t start, end; /* [start, end) */
    uint8_t kind;
    bool w, x, u;
    enum backing bk;
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
} inspector;

static void *insp_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ((inspector *)ctx)->s;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    if (gpa >= s->layout.pt_gpa && gpa - s->layout.pt_gpa < s->pt_size)
        return s->mem + s->visible_size + (gpa - s->layout.pt_gpa);
    return NULL;
}

/* The memory a restored sandbox has at `gpa` (what compaction,
 * sl_snapshot_from_memory, would copy from there): the guest-visible blob at
 * SL_BASE_ADDRESS, the page tables restore copies to pt_gpa (inside scratch),
 * the rest of scratch, or nothing. *next is the first GPA above `gpa` where
 * that may change, or 0 when it stays the same up to the end of the space. */
static enum backing backing_at(const sl_snapshot *s, uint64_t gpa, uint64_t *next)
{
    const sl_layout *l = &s->layout;
    enum backing bk = BK_NONE;
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        bk = BK_BLOB;
    else if (gpa >= l->pt_gpa && gpa - l->pt_gpa < s->pt_size)
        bk = BK_TABLES;
    else if (gpa >= l->scratch_gpa && gpa - l->scratch_gpa < l->scratch_size)
        bk = BK_SCRATCH;
    /* Every bound is below 2^37 (load checked the layout), so none wraps. */
    const uint64_t bounds[] = {SL_BASE_ADDRESS, SL_BASE_ADDRESS + s->visible_size, l->pt_gpa,
                               l->pt_gpa + s->pt_size, l->scratch_gpa, l->scratch_gpa + l->scratch_size};
    *next = 0;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (bounds[i] > gpa && (*next == 0 || bounds[i] < *next))
            *next = bounds[i];
    return bk;
}

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
static void add_piece(inspector *in, uint64_t gva, uint64_t len, const sl_perm *p, enum backing bk, bool win)
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
    /* A leaf of any size (4 KiB, 2 MiB, 1 GiB, 4 MiB) is described piece by
     * piece, as compaction copies it page by page: split where the scratch
     * window over its GVAs or the backing of its GPAs changes. At most a few
     * pieces per leaf, whatever its size. */
    const sl_mapping *m = &it->map;
    const sl_layout *l = &s->layout;
    uint64_t size = m->size ? m->size : SL_PAGE_SIZE;
    for (uint64_t off = 0; off < size;) {
        uint64_t gva = m->gva + off, gpa = m->gpa + off, next_gpa, len = size - off;
        enum backing bk = backing_at(s, gpa, &next_gpa);
        if (next_gpa && next_gpa - gpa < len)
            len = next_gpa - gpa;
        bool win = gva >= l->scratch_gva && gva - l->scratch_gva < l->scratch_size;
        uint64_t win_bound = win ? l->scratch_gva + l->scratch_size : l->scratch_gva;
        if (win_bound > gva && win_bound - gva < len)
            len = win_bound - gva;
        add_piece(in, gva, len, &m->perm, bk, win);
        off += len;
    }
    return true;
}

void sl_inspect_map(const sl_snapshot *s, sl_line_fn line, void *user, sl_jout *json)
{
    inspector in = {.s = s, .line = line, .user = user, .json = json};
    sl_pt_owners_init(&in.tables, 0);
    sl_pt_mem m = {.ctx = &in, .page = insp_page, .alloc = NULL};
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

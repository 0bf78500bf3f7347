/* libFuzzer target for the page-table walker: the input is guest-physical
 * memory from GPA 0, with a small header inside it choosing the architecture,
 * the roots and a translate range. Checks that walk_spaces and translate
 * terminate, read only inside the input (ASan guards the copy, sized exactly),
 * record each table once, report each entry at most once and keep their
 * promises about order and shape; then runs map over the same memory.
 *
 * Header (little-endian): [0] flags: bit0 i686, bits1-2 roots-1, bit3 roots
 * out of range; [1..8] four u16 root page numbers; [9..16] translate gva;
 * [17..18] translate pages; [19..26] map gva; [27..28] allocator first page.
 * Run with -max_len=65536 or more so that inputs hold several tables. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt.h"

#define MAX_TABLES 64 /* more than the pages of any input we are given */
#define MAX_ROOTS 4

#include "fuzz.h"

typedef struct fz {
    uint8_t *mem;
    size_t size;
    unsigned arch;
    uint64_t alloc_next;
    unsigned n_seen;
    struct {
        uint64_t gpa, va;
        unsigned root, depth;
    } seen[MAX_TABLES];
    uint8_t *entry_reported; /* one flag per byte offset of memory */
    bool have_last[MAX_ROOTS];
    uint64_t last_leaf[MAX_ROOTS];
    uint64_t items;
    /* translate state */
    uint64_t tr_lo, tr_hi, tr_last;
    bool tr_have;
    unsigned tr_count;
    uint64_t root_now;
} fz;

static void *fz_page(void *ctx, uint64_t gpa)
{
    fz *f = ctx;
    if ((gpa & 0xFFF) || f->size < 4096 || gpa > f->size - 4096)
        return NULL;
    return f->mem + gpa;
}

static bool fz_alloc(void *ctx, uint64_t *gpa)
{
    fz *f = ctx;
    if (f->size < 4096 || f->alloc_next > f->size - 4096)
        return false;
    *gpa = f->alloc_next;
    memset(f->mem + f->alloc_next, 0, 4096);
    f->alloc_next += 4096;
    return true;
}

static bool fz_lookup(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    fz *f = ctx;
    for (unsigned i = 0; i < f->n_seen; i++)
        if (f->seen[i].gpa == gpa) {
            *root = f->seen[i].root;
            *va = f->seen[i].va;
            *depth = f->seen[i].depth;
            return true;
        }
    return false;
}

static bool fz_record(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    fz *f = ctx;
    unsigned r, d;
    uint64_t v;

    FUZZ_ASSERT(!fz_lookup(ctx, gpa, &r, &v, &d)); /* each table recorded once */
    FUZZ_ASSERT(fz_page(ctx, gpa) != NULL);        /* only backed tables */
    FUZZ_ASSERT(root < MAX_ROOTS && depth < sl_pt_levels(f->arch));
    if (f->n_seen >= MAX_TABLES)
        return false;
    f->seen[f->n_seen].gpa = gpa;
    f->seen[f->n_seen].va = va;
    f->seen[f->n_seen].root = root;
    f->seen[f->n_seen].depth = depth;
    f->n_seen++;
    return true;
}

static bool canonical(unsigned arch, uint64_t va)
{
    if (arch == SL_ARCH_I686)
        return va < (1ull << 32);
    uint64_t upper = va >> 47;
    return upper == 0 || upper == 0x1FFFF;
}

static bool fz_walk_visit(void *arg, const sl_walk_item *it)
{
    fz *f = arg;
    unsigned esz = f->arch == SL_ARCH_I686 ? 4 : 8;

    f->items++;
    /* one item per entry of a recorded table at most */
    FUZZ_ASSERT(f->items <= (uint64_t)f->n_seen * (4096 / esz));
    FUZZ_ASSERT(it->root < MAX_ROOTS);
    if (it->kind == SL_WALK_THIS_SPACE) {
        uint64_t s = it->map.size;
        if (f->arch == SL_ARCH_I686)
            FUZZ_ASSERT(s == 4096 || s == (4u << 20));
        else
            FUZZ_ASSERT(s == 4096 || s == (2u << 20) || s == (1u << 30));
        FUZZ_ASSERT((it->map.gva & (s - 1)) == 0 && (it->map.gpa & (s - 1)) == 0);
        FUZZ_ASSERT(canonical(f->arch, it->map.gva));
        FUZZ_ASSERT(it->map.perm.kind == SL_MAP_BASIC || it->map.perm.kind == SL_MAP_COW);
        FUZZ_ASSERT(it->map.perm.kind != SL_MAP_COW || !it->map.perm.writable);
        /* depth first, ascending: a root never reports a VA twice */
        if (f->have_last[it->root])
            FUZZ_ASSERT(it->map.gva > f->last_leaf[it->root]);
        f->have_last[it->root] = true;
        f->last_leaf[it->root] = it->map.gva;
        return true;
    }
    FUZZ_ASSERT(it->kind == SL_WALK_ANOTHER_SPACE);
    unsigned owner, depth;
    uint64_t va;
    FUZZ_ASSERT(fz_lookup(f, it->table_gpa, &owner, &va, &depth));
    FUZZ_ASSERT(owner == it->owner_root && va == it->their_va && depth == it->their_depth);
    FUZZ_ASSERT(it->owner_root <= it->root);
    FUZZ_ASSERT(it->depth + 1 < sl_pt_levels(f->arch));
    FUZZ_ASSERT(canonical(f->arch, it->our_va));
    FUZZ_ASSERT(it->entry_gpa < f->size && it->entry_gpa % esz == 0);
    FUZZ_ASSERT(!f->entry_reported[it->entry_gpa]);
    f->entry_reported[it->entry_gpa] = 1;
    return true;
}

static bool fz_tr_visit(void *arg, const sl_mapping *m)
{
    fz *f = arg;
    sl_mapping lm;
    const sl_pt_mem mem = {f, fz_page, NULL};

    FUZZ_ASSERT(m->size == 4096 && (m->gva & 0xFFF) == 0 && (m->gpa & 0xFFF) == 0);
    FUZZ_ASSERT(canonical(f->arch, m->gva));
    if (f->tr_have)
        FUZZ_ASSERT(m->gva > f->tr_last);
    f->tr_have = true;
    f->tr_last = m->gva;
    /* where lookup sees a 4 KiB leaf, translate must agree with it */
    if (sl_pt_lookup(f->arch, &mem, f->root_now, m->gva, &lm, NULL)) {
        FUZZ_ASSERT(lm.gpa == m->gpa && lm.gva == m->gva);
        FUZZ_ASSERT(lm.perm.kind == m->perm.kind && lm.perm.writable == m->perm.writable &&
                    lm.perm.executable == m->perm.executable && lm.perm.user == m->perm.user);
    }
    return ++f->tr_count < 384; /* also exercises stopping */
}

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f;
    uint64_t roots[MAX_ROOTS];
    unsigned n_roots;

    if (size < 29 || size > (size_t)MAX_TABLES * 4096)
        return 0;
    memset(&f, 0, sizeof f);
    f.size = size;
    f.mem = malloc(size); /* exact size: any read past the input trips ASan */
    f.entry_reported = calloc(size, 1);
    FUZZ_ASSERT(f.mem && f.entry_reported);
    memcpy(f.mem, data, size);
    f.arch = (data[0] & 1) ? SL_ARCH_I686 : SL_ARCH_AMD64;
    n_roots = ((data[0] >> 1) & 3) + 1;
    for (unsigned r = 0; r < MAX_ROOTS; r++) {
        roots[r] = le(data + 1 + 2 * r, 2) << 12;
        if (data[0] & 8)
            roots[r] |= le(data + 1 + 2 * r, 2) << 40 | 0xFFF; /* junk bits and far-away GPAs */
    }

    const sl_pt_mem rmem = {&f, fz_page, NULL};
    const sl_pt_seen seen = {&f, fz_lookup, fz_record};
    int rc = sl_pt_walk_spaces(f.arch, &rmem, roots, n_roots, &seen, fz_walk_visit, &f);
    FUZZ_ASSERT(rc == SL_PT_OK || rc == SL_PT_ELIMIT);

    uint64_t gva = le(data + 9, 8), pages = le(data + 17, 2) % 512;
    for (unsigned r = 0; r < n_roots; r++) {
        f.tr_have = false;
        f.tr_count = 0;
        f.root_now = roots[r];
        rc = sl_pt_translate(f.arch, &rmem, roots[r], gva, pages * 4096, fz_tr_visit, &f);
        FUZZ_ASSERT(rc == SL_PT_OK || rc == SL_PT_ESTOPPED || rc == SL_PT_EINVAL);
        if (rc == SL_PT_EINVAL)
            FUZZ_ASSERT(!canonical(f.arch, gva) || !canonical(f.arch, gva + pages * 4096 - 1) ||
                        gva + pages * 4096 < gva ||
                        (f.arch == SL_ARCH_AMD64 && ((gva ^ (gva + pages * 4096 - 1)) >> 47)));
    }

    /* map into the same hostile memory, allocating from its own pages */
    const sl_pt_mem wmem = {&f, fz_page, fz_alloc};
    uint64_t mva = le(data + 19, 8) & ~0xFFFull;
    f.alloc_next = (le(data + 27, 2) % MAX_TABLES) << 12;
    sl_perm p = {(uint8_t)(data[0] >> 4) % 3, true, (data[0] >> 6) & 1, data[0] >> 7, true};
    rc = sl_pt_map(f.arch, &wmem, roots[0], mva, 0x4000, 2 * 4096, p);
    FUZZ_ASSERT(rc == SL_PT_OK || rc == SL_PT_EINVAL || rc == SL_PT_ENOMEM || rc == SL_PT_EBADTABLE);
    (void)sl_pt_lookup(f.arch, &rmem, roots[0], mva, NULL, NULL);

    free(f.entry_reported);
    free(f.mem);
    return 0;
}

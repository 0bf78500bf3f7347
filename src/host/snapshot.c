/* The snapshot engine: building snapshots from a binary and compacting a
 * running guest's memory into a new snapshot. */
#include "snapshot.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bookkeeping.h"
#include "kernel.h"
#include "snapfile.h"
#include "sl_elf.h"
#include "pt.h"
#include "u64map.h"

/* ---- growable page buffers ----
 * A buffer reserves its worst-case size as address space up front
 * (MAP_NORESERVE: untouched pages cost nothing), so it never moves and
 * pointers into it stay valid while page-table code holds them. */

typedef struct pagebuf {
    uint8_t *p;
    uint64_t len; /* bytes in use, a multiple of the page size */
    uint64_t cap; /* bytes reserved */
} pagebuf;

static int pagebuf_init(pagebuf *b, uint64_t cap, sl_errbuf *e)
{
    b->len = 0;
    b->cap = cap ? cap : SL_PAGE_SIZE;
    b->p = mmap(NULL, b->cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b->p == MAP_FAILED) {
        b->p = NULL;
        return sl_err(e, SL_ENOMEM, "cannot reserve %llu bytes for a snapshot", (unsigned long long)b->cap);
    }
    return 0;
}

static void pagebuf_free(pagebuf *b)
{
    if (b->p)
        munmap(b->p, b->cap);
    b->p = NULL;
}

/* Appends one page (a copy of src, or zeros); returns its offset or -1 when full. */
static int64_t pagebuf_add(pagebuf *b, const uint8_t *src)
{
    if (b->cap - b->len < SL_PAGE_SIZE)
        return -1;
    uint64_t off = b->len;
    if (src)
        memcpy(b->p + off, src, SL_PAGE_SIZE);
    b->len += SL_PAGE_SIZE;
    return (int64_t)off;
}

/* ---- the page-table area being built ----
 * Tables are allocated where restore will put them: layout.pt_gpa upward. */

typedef struct ptbuild {
    pagebuf buf;
    uint64_t base_gpa;
} ptbuild;

static void *ptb_page(void *ctx, uint64_t gpa)
{
    ptbuild *t = ctx;
    if (gpa < t->base_gpa || gpa - t->base_gpa >= t->buf.len)
        return NULL;
    return t->buf.p + (gpa - t->base_gpa);
}

static bool ptb_alloc(void *ctx, uint64_t *gpa)
{
    ptbuild *t = ctx;
    int64_t off = pagebuf_add(&t->buf, NULL);
    if (off < 0)
        return false;
    *gpa = t->base_gpa + (uint64_t)off;
    return true;
}

/* Room for page tables: the part of scratch between the output buffer and
 * the exception stack, less a page so the guest has at least one free page. */
static uint64_t pt_room(const sl_layout *l)
{
    return l->exc_stack_gpa - l->pt_gpa - SL_PAGE_SIZE;
}

static int ptbuild_init(ptbuild *t, const sl_layout *l, sl_errbuf *e)
{
    t->base_gpa = l->pt_gpa;
    return pagebuf_init(&t->buf, pt_room(l), e);
}

static int pt_error(int rc, sl_errbuf *e, const char *what, uint64_t va)
{
    if (rc == SL_PT_ENOMEM)
        return sl_err(e, SL_ERANGE, "scratch too small for the page tables (while mapping %s at 0x%llx)",
                      what, (unsigned long long)va);
    return sl_err(e, SL_EPAGETABLE, "cannot map %s at 0x%llx (page-table error %d)", what,
                  (unsigned long long)va, rc);
}

static sl_perm perm_of(unsigned kind, bool w, bool x)
{
    sl_perm p = {.kind = (uint8_t)kind, .readable = true, .writable = w, .executable = x, .user = false};
    return p;
}

/* Scratch is mapped afresh, read-write and no-execute, in every snapshot;
 * repeating it for a shared or repeated root changes nothing. */
/* The input and output buffers at the start of scratch and the call stack
 * after them are the user program's (it reads calls, writes results and
 * runs calls there); the page between output and call stack stays unmapped
 * (a call-stack overflow faults); the rest of scratch (page tables, kernel
 * stack, bookkeeping, free pages) is the kernel's. */
static int map_scratch(unsigned arch, ptbuild *pt, const sl_layout *l, uint64_t root, sl_errbuf *e)
{
    sl_pt_mem m = {.ctx = pt, .page = ptb_page, .alloc = ptb_alloc};
    uint64_t io = l->input_size + l->output_size, cs = l->callstack_gpa - l->scratch_gpa;
    uint64_t kern = l->pt_gpa - l->scratch_gpa;
    sl_perm user = perm_of(SL_MAP_BASIC, true, false);
    user.user = true;
    int rc = sl_pt_map(arch, &m, root, l->scratch_gva, l->scratch_gpa, io, user);
    if (!rc)
        rc = sl_pt_map(arch, &m, root, l->scratch_gva + cs, l->callstack_gpa, l->stack_size, user);
    if (!rc)
        rc = sl_pt_map(arch, &m, root, l->scratch_gva + kern, l->pt_gpa, l->scratch_size - kern,
                       perm_of(SL_MAP_BASIC, true, false));
    return rc ? pt_error(rc, e, "scratch", l->scratch_gva) : 0;
}

uint64_t sl_snapshot_new_config_id(void)
{
    static atomic_uint_fast64_t next = 1;
    return (uint64_t)atomic_fetch_add(&next, 1);
}

void sl_snapshot_compute_hash_in_steps(const sl_snapshot *s, uint64_t chunk, sl_hash_step_fn step, void *arg,
                                       uint8_t out[SL_HASH_LEN])
{
    sl_hasher *h = sl_hasher_new();
    if (!h) {
        memset(out, 0, SL_HASH_LEN);
        return;
    }
    for (uint64_t off = 0, n; off < s->mem_size; off += n) {
        n = chunk && s->mem_size - off > chunk ? chunk : s->mem_size - off;
        if (step)
            step(arg, off, n);
        sl_hasher_update(h, s->mem + off, (size_t)n);
    }
    for (unsigned i = 0; i < s->n_regions; i++) {
        uint8_t rec[SL_REGION_RECORD_SIZE];
        sl_region_record(&s->regions[i], rec);
        sl_hasher_update(h, rec, sizeof rec);
    }
    sl_hasher_final(h, out);
}

/* The blob in one update: the hasher sees it whole. */
void sl_snapshot_compute_hash(const sl_snapshot *s, uint8_t out[SL_HASH_LEN])
{
    sl_snapshot_compute_hash_in_steps(s, 0, NULL, NULL, out);
}

sl_snapshot *sl_snapshot_ref(sl_snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void sl_snapshot_free(sl_snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    sl_snapfile_release(s); /* a loaded file: closed and unregistered before the unmap */
    if (s->map_base)
        munmap(s->map_base, s->map_len);
    free(s);
}

void sl_snapshot_id(const sl_snapshot *s, uint8_t out[32])
{
    memcpy(out, s->hash, SL_HASH_LEN);
}

void sl_snapshot_id_hex(const sl_snapshot *s, char out[65])
{
    sl_hash_hex(s->hash, out);
}

uint64_t sl_snapshot_generation(const sl_snapshot *s) { return s->generation; }
uint64_t sl_snapshot_memory_size(const sl_snapshot *s) { return s->visible_size; }
uint64_t sl_snapshot_page_table_size(const sl_snapshot *s) { return s->pt_size; }

/* Joins the visible pages and the tables into one blob, makes it read-only,
 * and fills in the sizes and the identity. Takes ownership of vis's mapping. */
/* Presets Accessed and Dirty in every present entry: otherwise the CPU's
 * first walk after each restore writes them, dirtying every table page the
 * guest touches, and restore must copy those pages back. Dirty is ignored in
 * non-leaf entries, and a read-only leaf is never written through. */
static void preset_accessed_dirty(unsigned arch, pagebuf *pt)
{
    const uint64_t ad = (1ull << 5) | (1ull << 6);
    if (arch == SL_ARCH_I686) {
        for (uint64_t off = 0; off + 4 <= pt->len; off += 4) {
            uint32_t v;
            memcpy(&v, pt->p + off, 4);
            if (v & SL_PTE_P) {
                v |= (uint32_t)ad;
                memcpy(pt->p + off, &v, 4);
            }
        }
        return;
    }
    for (uint64_t off = 0; off + 8 <= pt->len; off += 8) {
        uint64_t v;
        memcpy(&v, pt->p + off, 8);
        if (v & SL_PTE_P) {
            v |= ad;
            memcpy(pt->p + off, &v, 8);
        }
    }
}

static int finish_blob(sl_snapshot *s, pagebuf *vis, ptbuild *pt, sl_errbuf *e)
{
    preset_accessed_dirty(s->arch, &pt->buf);
    uint64_t total = vis->len + pt->buf.len;
    if (vis->cap < total)
        return sl_err(e, SL_ENOMEM, "internal: snapshot buffer too small for its page tables");
    memcpy(vis->p + vis->len, pt->buf.p, pt->buf.len);
    /* Give back the unused reservation; shrinking a mapping never moves it. */
    if (total < vis->cap)
        munmap(vis->p + total, vis->cap - total);
    mprotect(vis->p, total, PROT_READ);
    s->mem = vis->p;
    s->mem_size = s->map_len = total;
    s->map_base = vis->p;
    atomic_store(&s->refs, 1);
    s->visible_size = vis->len;
    s->pt_size = pt->buf.len;
    s->stats.pages_pt = pt->buf.len / SL_PAGE_SIZE;
    vis->p = NULL;
    sl_snapshot_compute_hash(s, s->hash);
    return 0;
}

/* ======================= from a binary ======================= */

static uint32_t seg_flags(const sl_elf_segment *g)
{
    return (g->r ? SL_RF_READ : 0) | (g->w ? SL_RF_WRITE : 0) | (g->x ? SL_RF_EXEC : 0);
}

/* Image regions, one per run of pages with the same permissions; a page that
 * two segments share gets the union of their permissions. `extra` (SL_RF_USER
 * for the program) is added to every region. */
static int add_image_regions(sl_layout *l, const sl_elf_image *img, uint64_t gpa, uint64_t gva, uint64_t size,
                             uint32_t extra, uint32_t kind, sl_errbuf *e)
{
    uint64_t npages = size / SL_PAGE_SIZE;
    uint64_t run_start = 0;
    uint32_t run_flags = 0;
    for (uint64_t pg = 0; pg <= npages; pg++) {
        uint32_t f = 0;
        if (pg < npages) {
            uint64_t va = img->base_va + pg * SL_PAGE_SIZE;
            for (unsigned i = 0; i < img->n_segments; i++) {
                const sl_elf_segment *g = &img->seg[i];
                uint64_t s = g->vaddr & SL_PAGE_MASK, end = g->vaddr + g->memsz;
                if (va >= s && va < end)
                    f |= seg_flags(g);
            }
            /* Gaps between segments stay mapped read-only (zeros). */
            if (!f)
                f = SL_RF_READ;
        }
        if (pg == npages || (pg > 0 && f != run_flags)) {
            int rc = sl_layout_add_region(l, gpa + run_start * SL_PAGE_SIZE, gva + run_start * SL_PAGE_SIZE,
                                          (pg - run_start) * SL_PAGE_SIZE, run_flags | extra, kind, e);
            if (rc)
                return rc;
            run_start = pg;
        }
        run_flags = f;
    }
    return 0;
}

static int map_region(unsigned arch, const sl_pt_mem *m, uint64_t root, const sl_region *r,
                      sl_snapshot_stats *st, sl_errbuf *e)
{
    bool w = r->flags & SL_RF_WRITE, x = r->flags & SL_RF_EXEC;
    sl_perm p = w ? perm_of(SL_MAP_COW, false, x) : perm_of(SL_MAP_BASIC, false, x);
    p.user = r->flags & SL_RF_USER;
    int rc = sl_pt_map(arch, m, root, r->gva, r->gpa, r->size, p);
    if (rc)
        return pt_error(rc, e, "a region", r->gva);
    if (w)
        st->pages_cow += r->size / SL_PAGE_SIZE;
    else
        st->pages_ro += r->size / SL_PAGE_SIZE;
    st->leaves += r->size / SL_PAGE_SIZE;
    return 0;
}

int sl_snapshot_from_binary(sl_snapshot **out, const uint8_t *elf, size_t len, const sl_config *cfg,
                            sl_errbuf *e)
{
    sl_elf_image img, kimg;
    int rc = sl_elf_parse(elf, len, &img, e);
    if (rc)
        return rc;
    const uint8_t *kelf;
    size_t klen;
    if ((rc = sl_guest_kernel(img.arch, &kelf, &klen, e)))
        return rc;
    sl_errbuf ke;
    if ((rc = sl_elf_parse(kelf, klen, &kimg, &ke)))
        return sl_err(e, rc, "guest kernel: %s", ke.msg);
    if (kimg.arch != img.arch || !kimg.pie)
        return sl_err(e, SL_EINVAL, "guest kernel: not a position-independent image for this architecture");
    sl_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return sl_err(e, SL_ENOMEM, "out of memory");
    pagebuf vis = {0};
    ptbuild pt = {0};
    sl_layout *l = &s->layout;
    if ((rc = sl_layout_config(l, img.arch, cfg, e)) ||
        (rc = sl_layout_place(l, kimg.span, img.base_va, img.span, !img.pie, e)))
        goto fail;
    uint64_t visible = l->visible_end - SL_BASE_ADDRESS;
    if ((rc = ptbuild_init(&pt, l, e)) || (rc = pagebuf_init(&vis, visible + pt.buf.cap, e)))
        goto fail;
    vis.len = visible; /* fresh anonymous memory is already zero */
    uint8_t *base = vis.p - SL_BASE_ADDRESS; /* index by GPA */

    uint64_t delta = l->image_gva - img.base_va;
    sl_peb_user user = {.entry = img.entry + delta, .phdr = img.phdr_va ? img.phdr_va + delta : 0,
                        .phnum = img.phnum, .phent = img.phent};
    sl_peb_write(base + l->peb_gpa, l, &user);
    /* The kernel is relocated here; the program is only placed: a static PIE
     * relocates itself (musl's rcrt1, glibc's static-pie start), as under
     * Linux, and i386's REL relocations applied twice would corrupt it. */
    sl_elf_image placed = img;
    placed.rel_size = 0;
    if ((rc = sl_elf_load(&kimg, kelf, klen, base + l->kernel_gpa, l->kernel_size, l->kernel_gpa, e)) ||
        (rc = sl_elf_load(&placed, elf, len, base + l->image_gpa, l->image_size, l->image_gva, e)))
        goto fail;
    if (l->init_data_size)
        memcpy(base + l->init_data_gpa, cfg->init_data, cfg->init_data_size);

    uint32_t init_flags = (l->init_data_perm & SL_PERM_READ ? SL_RF_READ : 0) |
                          (l->init_data_perm & SL_PERM_WRITE ? SL_RF_WRITE : 0) |
                          (l->init_data_perm & SL_PERM_EXEC ? SL_RF_EXEC : 0);
    if ((rc = sl_layout_add_region(l, l->peb_gpa, l->peb_gpa, SL_PAGE_SIZE, SL_RF_READ, SL_RK_PEB, e)) ||
        (rc = add_image_regions(l, &kimg, l->kernel_gpa, l->kernel_gpa, l->kernel_size, 0, SL_RK_KERNEL, e)) ||
        (rc = add_image_regions(l, &img, l->image_gpa, l->image_gva, l->image_size, SL_RF_USER, SL_RK_IMAGE, e)) ||
        (l->init_data_size &&
         (rc = sl_layout_add_region(l, l->init_data_gpa, l->init_data_gva, l->init_data_size,
                                    init_flags | SL_RF_READ | SL_RF_USER, SL_RK_INIT_DATA, e))) ||
        (rc = sl_layout_add_region(l, l->heap_gpa, l->heap_gva, l->heap_size,
                                   SL_RF_READ | SL_RF_WRITE | SL_RF_USER, SL_RK_HEAP, e)))
        goto fail;

    sl_pt_mem m = {.ctx = &pt, .page = ptb_page, .alloc = ptb_alloc};
    uint64_t root;
    if (!ptb_alloc(&pt, &root)) {
        rc = sl_err(e, SL_ERANGE, "scratch too small for the page tables");
        goto fail;
    }
    for (unsigned i = 0; i < l->n_regions; i++)
        if ((rc = map_region(img.arch, &m, root, &l->regions[i], &s->stats, e)))
            goto fail;
    if ((rc = map_scratch(img.arch, &pt, l, root, e)))
        goto fail;

    s->arch = img.arch;
    s->roots[0] = root;
    s->n_roots = 1;
    s->cur_root = 0;
    memcpy(s->regions, l->regions, sizeof l->regions);
    s->n_regions = l->n_regions;
    s->load_info.valid = true;
    s->load_info.pie = img.pie;
    s->load_info.base_va = img.base_va;
    s->load_info.load_addr = l->image_gva;
    s->load_info.entry = img.entry;
    s->stack_top = l->stack_top;
    s->next_kind = SL_NEXT_INITIALISE;
    s->next_addr = l->kernel_gpa + kimg.entry - kimg.base_va;
    s->config_id = sl_snapshot_new_config_id();
    s->generation = 0;
    if ((rc = finish_blob(s, &vis, &pt, e)))
        goto fail;
    pagebuf_free(&pt.buf);
    *out = s;
    return 0;
fail:
    pagebuf_free(&vis);
    pagebuf_free(&pt.buf);
    free(s);
    return rc;
}

/* ======================= from guest memory ======================= */

/* Resolves guest-physical pages of the guest being snapshotted. */
typedef struct source {
    const sl_guest_state *st;
} source;

static const uint8_t *in_range(uint64_t gpa, uint64_t base, uint64_t size, const uint8_t *host)
{
    if (!host || gpa < base || gpa - base >= size || size - (gpa - base) < SL_PAGE_SIZE)
        return NULL;
    return host + (gpa - base);
}

static const uint8_t *src_page(const sl_guest_state *st, uint64_t gpa)
{
    const uint8_t *p;
    if (gpa & (SL_PAGE_SIZE - 1))
        return NULL;
    if ((p = in_range(gpa, SL_BASE_ADDRESS, st->snap_size, st->snap_mem)) ||
        (p = in_range(gpa, st->layout->scratch_gpa, st->layout->scratch_size, st->scratch)))
        return p;
    for (unsigned i = 0; i < st->n_extra; i++)
        if ((p = in_range(gpa, st->extra[i].gpa, st->extra[i].size, st->extra[i].host)))
            return p;
    return NULL;
}

/* The walker only reads; the cast drops const for the shared callback type. */
static void *src_page_cb(void *ctx, uint64_t gpa)
{
    return (void *)src_page(((source *)ctx)->st, gpa);
}

/* Tables reached so far: gpa -> index into `owners`. */
typedef struct seen_tables {
    sl_u64map map;
    struct owner {
        uint64_t va;
        uint32_t root, depth;
    } *owners;
    size_t n, cap, limit;
} seen_tables;

static bool seen_lookup(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    seen_tables *t = ctx;
    uint64_t *i = sl_u64map_get(&t->map, gpa);
    if (!i)
        return false;
    *root = t->owners[*i].root;
    *va = t->owners[*i].va;
    *depth = t->owners[*i].depth;
    return true;
}

static bool seen_record(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    seen_tables *t = ctx;
    if (t->n >= t->limit)
        return false;
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        struct owner *o = realloc(t->owners, ncap * sizeof *o);
        if (!o)
            return false;
        t->owners = o;
        t->cap = ncap;
    }
    if (!sl_u64map_put(&t->map, gpa, t->n))
        return false;
    t->owners[t->n++] = (struct owner){.va = va, .root = root, .depth = depth};
    return true;
}

/* Owner recorded for leaf tables that map nothing but scratch. */
#define SCRATCH_OWNER SL_BK_MAX_ROOTS

/* The scratch window is mapped afresh in every snapshot, so its leaf tables
 * need not be walked page by page: recording them as seen beforehand makes
 * the walk report each as one shared sub-table, which linking then ignores
 * (its owner is no address space). Only tables whose whole span lies inside
 * the window qualify, so no other mapping can hide behind them. */
static bool skip_scratch_tables(const sl_guest_state *st, seen_tables *tables, uint64_t root)
{
    const sl_layout *l = st->layout;
    unsigned arch = l->arch, leaf_depth = sl_pt_levels(arch) - 1;
    uint64_t span = arch == SL_ARCH_I686 ? 1024 * SL_PAGE_SIZE : 512 * SL_PAGE_SIZE;
    uint64_t va = (l->scratch_gva + span - 1) / span * span, end = l->scratch_gva + l->scratch_size;
    source src = {.st = st};
    sl_pt_mem m = {.ctx = &src, .page = src_page_cb, .alloc = NULL};
    for (; va >= l->scratch_gva && va + span <= end && va + span > va; va += span) {
        uint64_t t;
        unsigned owner, depth;
        uint64_t their;
        if (sl_pt_table_at(arch, &m, root, va, leaf_depth, false, &t) == SL_PT_OK && t != root &&
            !seen_lookup(tables, t, &owner, &their, &depth) &&
            !seen_record(tables, t, SCRATCH_OWNER, va, leaf_depth))
            return false;
    }
    return true;
}

typedef struct leaf {
    uint64_t gva, gpa, size;
    sl_perm perm;
    uint32_t root;
} leaf;

typedef struct walk_out {
    leaf *leaves;
    size_t n_leaves, cap_leaves;
    sl_walk_item *links;
    size_t n_links, cap_links;
    bool oom;
} walk_out;

static bool grow(void **p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

static bool on_walk_item(void *arg, const sl_walk_item *it)
{
    walk_out *w = arg;
    if (it->kind == SL_WALK_THIS_SPACE) {
        if (w->n_leaves == w->cap_leaves && !grow((void **)&w->leaves, &w->cap_leaves, sizeof(leaf)))
            return w->oom = true, false;
        w->leaves[w->n_leaves++] = (leaf){.gva = it->map.gva, .gpa = it->map.gpa, .size = it->map.size,
                                          .perm = it->map.perm, .root = it->root};
    } else {
        if (w->n_links == w->cap_links &&
            !grow((void **)&w->links, &w->cap_links, sizeof(sl_walk_item)))
            return w->oom = true, false;
        w->links[w->n_links++] = *it;
    }
    return true;
}

static bool in_window(uint64_t va, uint64_t base, uint64_t size)
{
    return va >= base && va - base < size;
}

/* Copies (once per source page) and maps one 4 KiB leaf in the rebuilt tables. */
static int place_leaf(sl_snapshot *s, const sl_guest_state *st, pagebuf *vis, ptbuild *pt,
                      sl_u64map *copied, const seen_tables *tables, const uint64_t *new_roots,
                      uint64_t gva, uint64_t gpa, sl_perm perm, uint32_t root, sl_errbuf *e)
{
    const sl_layout *l = st->layout;
    unsigned arch = l->arch;
    uint64_t scratch_va = l->scratch_gva;
    if (in_window(gva, scratch_va, l->scratch_size))
        return 0; /* the scratch window is mapped afresh */
    if (sl_u64map_get(&tables->map, gpa))
        return 0; /* a page table seen as data (self-map): tables are rebuilt, not copied */
    const uint8_t *src = src_page(st, gpa);
    if (!src)
        return 0; /* unbacked: it could only fault, so it reads as not present */
    uint64_t *have = sl_u64map_get(copied, gpa);
    uint64_t ngpa;
    if (have) {
        ngpa = *have;
    } else {
        int64_t off = pagebuf_add(vis, src);
        if (off < 0)
            return sl_err(e, SL_ERANGE, "snapshot larger than its reservation");
        ngpa = SL_BASE_ADDRESS + (uint64_t)off;
        if (!sl_u64map_put(copied, gpa, ngpa))
            return sl_err(e, SL_ENOMEM, "out of memory");
        if (perm.writable || perm.kind == SL_MAP_COW)
            s->stats.pages_cow++;
        else
            s->stats.pages_ro++;
    }
    /* Writable pages become copy-on-write; CoW stays CoW; read-only stays. */
    if (perm.writable || perm.kind == SL_MAP_COW) {
        perm.kind = SL_MAP_COW;
        perm.writable = false;
    } else {
        perm.kind = SL_MAP_BASIC;
    }
    perm.readable = true;
    sl_pt_mem m = {.ctx = pt, .page = ptb_page, .alloc = ptb_alloc};
    int rc = sl_pt_map(arch, &m, new_roots[root], gva, ngpa, SL_PAGE_SIZE, perm);
    if (rc)
        return pt_error(rc, e, "a page", gva);
    s->stats.leaves++;
    return 0;
}

/* Large pages are split into 4 KiB leaves; this caps the work a hostile table
 * full of 1 GiB entries can cause. */
#define SL_MAX_LEAVES (1ull << 24)
#define SL_MAX_EXTRA 16u

/* The guest-physical ranges backed by memory, as {base, size}, in a fixed
 * order (snapshot, scratch, extra regions); ranges never wrap. */
static unsigned backed_ranges(const sl_guest_state *st, uint64_t out[][2])
{
    unsigned n = 0;
    out[n][0] = SL_BASE_ADDRESS, out[n++][1] = st->snap_size;
    out[n][0] = st->layout->scratch_gpa, out[n++][1] = st->layout->scratch_size;
    for (unsigned i = 0; i < st->n_extra && i < SL_MAX_EXTRA; i++)
        if (st->extra[i].host && st->extra[i].gpa + st->extra[i].size >= st->extra[i].gpa)
            out[n][0] = st->extra[i].gpa, out[n++][1] = st->extra[i].size;
    return n;
}

int sl_snapshot_from_memory(sl_snapshot **out, const sl_guest_state *st, sl_errbuf *e)
{
    const sl_layout *l = st->layout;
    unsigned arch = l ? l->arch : 0;
    if (!l || !st->roots || !st->n_roots || st->n_roots > SL_BK_MAX_ROOTS || st->cur_root >= st->n_roots)
        return sl_err(e, SL_EINVAL, "snapshot needs 1..%u page-table roots and a valid current root",
                      SL_BK_MAX_ROOTS);
    if (st->sregs_len > SL_SREGS_MAX)
        return sl_err(e, SL_EINVAL, "special registers too large");
    if (st->n_extra > SL_MAX_EXTRA)
        return sl_err(e, SL_EINVAL, "more than %u extra memory regions", SL_MAX_EXTRA);
    if (st->snap_size % SL_PAGE_SIZE || !st->scratch)
        return sl_err(e, SL_EINVAL, "snapshot memory must be whole pages and scratch present");

    int rc = 0;
    sl_snapshot *s = calloc(1, sizeof *s);
    source src = {.st = st};
    seen_tables tables = {.limit = 0};
    walk_out w = {0};
    sl_u64map copied;
    pagebuf vis = {0};
    ptbuild pt = {0};
    sl_u64map_init(&tables.map);
    sl_u64map_init(&copied);
    if (!s)
        return sl_err(e, SL_ENOMEM, "out of memory");

    /* Every source page can be copied at most once, and tables cannot exceed
     * the pages that back them. */
    uint64_t src_bytes = st->snap_size + l->scratch_size;
    for (unsigned i = 0; i < st->n_extra; i++)
        src_bytes += st->extra[i].size;
    tables.limit = src_bytes / SL_PAGE_SIZE + 1;
    if ((rc = ptbuild_init(&pt, l, e)) || (rc = pagebuf_init(&vis, src_bytes + pt.buf.cap, e)))
        goto done;

    /* 1. Walk every root together. */
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!src_page(st, st->roots[i] & SL_PAGE_MASK)) {
            rc = sl_err(e, SL_EPAGETABLE, "page-table root %u at GPA 0x%llx is outside guest memory", i,
                        (unsigned long long)st->roots[i]);
            goto done;
        }
    for (unsigned i = 0; i < st->n_roots; i++)
        if (!skip_scratch_tables(st, &tables, st->roots[i] & SL_PAGE_MASK)) {
            rc = sl_err(e, SL_ENOMEM, "out of memory walking page tables");
            goto done;
        }
    sl_pt_mem m = {.ctx = &src, .page = src_page_cb, .alloc = NULL};
    sl_pt_seen seen = {.ctx = &tables, .lookup = seen_lookup, .record = seen_record};
    rc = sl_pt_walk_spaces(arch, &m, st->roots, st->n_roots, &seen, on_walk_item, &w);
    if (rc || w.oom) {
        rc = w.oom ? sl_err(e, SL_ENOMEM, "out of memory walking page tables")
                   : sl_err(e, SL_EPAGETABLE, "page-table walk failed (%d): too many tables", rc);
        goto done;
    }

    /* 2. One rebuilt root per distinct root, in order; a root repeated in the
     * list shares the first one's table. A root that is a sub-table of another
     * space makes no sense. */
    uint64_t new_roots[SL_BK_MAX_ROOTS];
    for (unsigned i = 0; i < st->n_roots; i++) {
        unsigned owner = i, depth = 0;
        uint64_t va;
        seen_lookup(&tables, st->roots[i] & SL_PAGE_MASK, &owner, &va, &depth);
        if (owner != i && depth == 0 && (st->roots[owner] & SL_PAGE_MASK) == (st->roots[i] & SL_PAGE_MASK)) {
            new_roots[i] = new_roots[owner];
            continue;
        }
        if (owner != i) {
            rc = sl_err(e, SL_EPAGETABLE, "page-table root %u (GPA 0x%llx) is a sub-table of space %u", i,
                        (unsigned long long)st->roots[i], owner);
            goto done;
        }
        if (!ptb_alloc(&pt, &new_roots[i])) {
            rc = sl_err(e, SL_ERANGE, "scratch too small for the page tables");
            goto done;
        }
    }

    /* 3. Copy and map every private leaf. A large page is split into its
     * 4 KiB pieces, visiting only the pieces backed by guest memory: the rest
     * would read as not present anyway, and a hostile table full of 1 GiB
     * entries must not cost a walk over every piece. */
    uint64_t n4k = 0;
    uint64_t ranges[2 + SL_MAX_EXTRA][2];
    unsigned n_ranges = backed_ranges(st, ranges);
    for (size_t i = 0; i < w.n_leaves; i++) {
        const leaf *lf = &w.leaves[i];
        uint64_t size = lf->size ? lf->size : SL_PAGE_SIZE;
        for (unsigned r = 0; r < n_ranges; r++) {
            uint64_t lo = lf->gpa > ranges[r][0] ? lf->gpa : ranges[r][0];
            uint64_t end = lf->gpa + size, rend = ranges[r][0] + ranges[r][1];
            uint64_t hi = end < rend ? end : rend;
            for (uint64_t p = lo; p < hi; p += SL_PAGE_SIZE) {
                if (++n4k > SL_MAX_LEAVES) {
                    rc = sl_err(e, SL_ERANGE, "guest maps more than %llu pages",
                                (unsigned long long)SL_MAX_LEAVES);
                    goto done;
                }
                if ((rc = place_leaf(s, st, &vis, &pt, &copied, &tables, new_roots, lf->gva + (p - lf->gpa), p,
                                     lf->perm, lf->root, e)))
                    goto done;
            }
        }
    }

    /* 4. Link shared sub-tables to the owner's rebuilt table. */
    sl_pt_mem bm = {.ctx = &pt, .page = ptb_page, .alloc = ptb_alloc};
    for (size_t i = 0; i < w.n_links; i++) {
        const sl_walk_item *it = &w.links[i];
        uint64_t target;
        if (it->root >= st->n_roots || it->owner_root >= st->n_roots ||
            sl_pt_table_at(arch, &bm, new_roots[it->owner_root], it->their_va, it->their_depth, false, &target))
            continue; /* nothing was kept below it */
        if ((rc = sl_pt_link(arch, &bm, new_roots[it->root], it->our_va, it->depth, target))) {
            rc = pt_error(rc, e, "a shared table", it->our_va);
            goto done;
        }
    }

    /* 5. Scratch in every space; tables after the visible pages. */
    for (unsigned i = 0; i < st->n_roots; i++)
        if ((rc = map_scratch(arch, &pt, l, new_roots[i], e)))
            goto done;

    s->arch = arch;
    s->layout = *l;
    s->layout.n_regions = 0; /* every page now lives in the blob */
    s->n_regions = 0;
    for (unsigned i = 0; i < st->n_roots; i++)
        s->roots[i] = new_roots[i];
    s->n_roots = st->n_roots;
    s->cur_root = st->cur_root;
    s->stack_top = st->stack_top;
    s->next_kind = st->next_kind;
    s->next_addr = st->next_addr;
    s->generation = st->generation;
    s->config_id = st->config_id;
    s->sregs_len = st->sregs_len;
    if (st->sregs_len)
        memcpy(s->sregs, st->sregs, st->sregs_len);
    rc = finish_blob(s, &vis, &pt, e);

done:
    pagebuf_free(&vis);
    pagebuf_free(&pt.buf);
    sl_u64map_free(&tables.map);
    sl_u64map_free(&copied);
    free(tables.owners);
    free(w.leaves);
    free(w.links);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

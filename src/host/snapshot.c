/* The snapshot object (identity, references, what it holds) and building
 * one from a guest ELF. Compacting a running guest into a snapshot is in
 * compact.c; what both builders share is in snapbuild.c. */
#include "snapshot.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bookkeeping.h"
#include "kernel.h"
#include "snapbuild.h"
#include "snapfile.h"
#include "snapinc.h"
#include "sl_elf.h"
#include "pt.h"

sl_hash_job sl_snapshot_hash_input(const sl_snapshot *s, uint8_t tail[SL_SNAPSHOT_TAIL_MAX])
{
    for (unsigned i = 0; i < s->n_regions; i++)
        sl_region_record(&s->regions[i], tail + i * SL_REGION_RECORD_SIZE);
    return (sl_hash_job){.blob = s->mem, .blob_size = s->mem_size, .tail = tail,
                         .tail_len = (size_t)s->n_regions * SL_REGION_RECORD_SIZE};
}

void sl_snapshot_compute_hash(const sl_snapshot *s, uint8_t out[SL_HASH_LEN])
{
    uint8_t tail[SL_SNAPSHOT_TAIL_MAX];
    sl_hash_job job = sl_snapshot_hash_input(s, tail);
    sl_hashtree_hash(&job, NULL, out);
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
    sl_hashtree_free(s->tree);
    sl_incprep_free(atomic_load(&s->inc));
    if (s->composite)
        munmap(s->composite, s->composite_len);
    if (s->map_base)
        munmap(s->map_base, s->map_len);
    sl_snapshot_free(s->chain_parent);
    free(s->runs);
    free(s->kept);
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

int sl_snapshot_parent_id(const sl_snapshot *s, uint8_t out[32])
{
    if (!s->has_parent)
        return SL_ENOTFOUND;
    memcpy(out, s->parent, SL_HASH_LEN);
    return 0;
}

uint64_t sl_snapshot_generation(const sl_snapshot *s) { return s->generation; }
unsigned sl_snapshot_chain_depth(const sl_snapshot *s) { return s ? s->depth : 0; }
uint64_t sl_snapshot_memory_size(const sl_snapshot *s) { return s->visible_size; }
uint64_t sl_snapshot_page_table_size(const sl_snapshot *s) { return s->pt_size; }

unsigned sl_snapshot_arch(const sl_snapshot *s) { return s->arch; }
const sl_layout *sl_snapshot_layout(const sl_snapshot *s) { return &s->layout; }
uint64_t sl_snapshot_family(const sl_snapshot *s) { return s->family; }
const uint8_t *sl_snapshot_hash(const sl_snapshot *s) { return s->hash; }
const sl_hashtree *sl_snapshot_hashtree(const sl_snapshot *s) { return s->tree; }
const uint8_t *sl_snapshot_visible(const sl_snapshot *s) { return s->mem; }
const uint8_t *sl_snapshot_tables(const sl_snapshot *s) { return s->mem + s->visible_size; }
unsigned sl_snapshot_n_roots(const sl_snapshot *s) { return s->n_roots; }
uint64_t sl_snapshot_root(const sl_snapshot *s, unsigned i) { return i < s->n_roots ? s->roots[i] : 0; }
unsigned sl_snapshot_cur_root(const sl_snapshot *s) { return s->cur_root; }
uint32_t sl_snapshot_next_kind(const sl_snapshot *s) { return s->next_kind; }
uint64_t sl_snapshot_next_addr(const sl_snapshot *s) { return s->next_addr; }
uint64_t sl_snapshot_stack_top(const sl_snapshot *s) { return s->stack_top; }
const sl_snapshot_stats *sl_snapshot_page_stats(const sl_snapshot *s) { return &s->stats; }

const uint8_t *sl_snapshot_blob(const sl_snapshot *s, uint64_t *size)
{
    *size = s->mem_size;
    return s->mem;
}

const uint8_t *sl_snapshot_cpu_state(const sl_snapshot *s, uint32_t *len)
{
    *len = s->sregs_len;
    return s->sregs_len ? s->sregs : NULL;
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
    sl_perm p = w ? sl_snapbuild_perm(SL_MAP_COW, false, x) : sl_snapbuild_perm(SL_MAP_BASIC, false, x);
    p.user = r->flags & SL_RF_USER;
    int rc = sl_pt_map(arch, m, root, r->gva, r->gpa, r->size, p);
    if (rc)
        return sl_snapbuild_pt_error(rc, e, "a region", r->gva);
    if (w)
        st->pages_cow += r->size / SL_PAGE_SIZE;
    else
        st->pages_ro += r->size / SL_PAGE_SIZE;
    st->leaves += r->size / SL_PAGE_SIZE;
    return 0;
}

/* One build from a binary: the program and the guest kernel it runs on,
 * and the snapshot they become. */
typedef struct binary_build {
    const uint8_t *elf, *kelf;
    size_t len, klen;
    sl_elf_image img, kimg;
    const sl_config *cfg;
    sl_errbuf *e;
    sl_snapshot *s;
    sl_pagebuf vis; /* visible memory, from SL_BASE_ADDRESS */
    sl_ptbuild pt;  /* the tables, from layout.pt_gpa */
} binary_build;

/* Both images are parsed before anything is reserved: the program's
 * architecture picks the kernel, and their spans decide the layout. */
static int parse_images(binary_build *b)
{
    int rc = sl_elf_parse(b->elf, b->len, &b->img, b->e);
    if (rc)
        return rc;
    if ((rc = sl_guest_kernel(b->img.arch, &b->kelf, &b->klen, b->e)))
        return rc;
    sl_errbuf ke;
    if ((rc = sl_elf_parse(b->kelf, b->klen, &b->kimg, &ke)))
        return sl_err(b->e, rc, "guest kernel: %s", ke.msg);
    if (b->kimg.arch != b->img.arch || !b->kimg.pie)
        return sl_err(b->e, SL_EINVAL, "guest kernel: not a position-independent image for this architecture");
    return 0;
}

/* The snapshot and its layout (from the configuration and the images'
 * spans), then the buffers: the visible memory in full (fresh anonymous
 * memory is already zero), with room behind it for the tables that sealing
 * appends. */
static int place(binary_build *b)
{
    if (!(b->s = calloc(1, sizeof *b->s)))
        return sl_err(b->e, SL_ENOMEM, "out of memory");
    sl_layout *l = &b->s->layout;
    int rc;
    if ((rc = sl_layout_config(l, b->img.arch, b->cfg, b->e)) ||
        (rc = sl_layout_place(l, b->kimg.span, b->img.base_va, b->img.span, !b->img.pie, b->e)))
        return rc;
    uint64_t visible = l->visible_end - SL_BASE_ADDRESS;
    if ((rc = sl_ptbuild_init(&b->pt, l, b->e)) || (rc = sl_pagebuf_init(&b->vis, visible + b->pt.buf.cap, b->e)))
        return rc;
    b->vis.len = visible;
    return 0;
}

/* The PEB, both images and the init data, each at its GPA. The kernel is
 * relocated here; the program is only placed: a static PIE relocates itself
 * (musl's rcrt1, glibc's static-pie start), as under Linux, and i386's REL
 * relocations applied twice would corrupt it. */
static int load_images(binary_build *b)
{
    const sl_layout *l = &b->s->layout;
    const sl_elf_image *img = &b->img;
    uint8_t *base = b->vis.p - SL_BASE_ADDRESS; /* index by GPA */
    uint64_t delta = l->image_gva - img->base_va;
    sl_peb_user user = {.entry = img->entry + delta, .phdr = img->phdr_va ? img->phdr_va + delta : 0,
                        .phnum = img->phnum, .phent = img->phent};
    sl_peb_write(base + l->peb_gpa, l, &user);
    sl_elf_image placed = *img;
    placed.rel_size = 0;
    int rc;
    if ((rc = sl_elf_load(&b->kimg, b->kelf, b->klen, base + l->kernel_gpa, l->kernel_size, l->kernel_gpa, b->e)) ||
        (rc = sl_elf_load(&placed, b->elf, b->len, base + l->image_gpa, l->image_size, l->image_gva, b->e)))
        return rc;
    if (l->init_data_size)
        memcpy(base + l->init_data_gpa, b->cfg->init_data, b->cfg->init_data_size);
    return 0;
}

/* The regions the snapshot records (and the file keeps), in GPA order:
 * PEB, kernel, program, init data, heap. */
static int add_regions(binary_build *b)
{
    sl_layout *l = &b->s->layout;
    sl_errbuf *e = b->e;
    uint32_t init_flags = (l->init_data_perm & SL_PERM_READ ? SL_RF_READ : 0) |
                          (l->init_data_perm & SL_PERM_WRITE ? SL_RF_WRITE : 0) |
                          (l->init_data_perm & SL_PERM_EXEC ? SL_RF_EXEC : 0);
    int rc;
    if ((rc = sl_layout_add_region(l, l->peb_gpa, l->peb_gpa, SL_PAGE_SIZE, SL_RF_READ, SL_RK_PEB, e)) ||
        (rc = add_image_regions(l, &b->kimg, l->kernel_gpa, l->kernel_gpa, l->kernel_size, 0, SL_RK_KERNEL, e)) ||
        (rc = add_image_regions(l, &b->img, l->image_gpa, l->image_gva, l->image_size, SL_RF_USER, SL_RK_IMAGE,
                                e)) ||
        (l->init_data_size &&
         (rc = sl_layout_add_region(l, l->init_data_gpa, l->init_data_gva, l->init_data_size,
                                    init_flags | SL_RF_READ | SL_RF_USER, SL_RK_INIT_DATA, e))) ||
        (rc = sl_layout_add_region(l, l->heap_gpa, l->heap_gva, l->heap_size,
                                   SL_RF_READ | SL_RF_WRITE | SL_RF_USER, SL_RK_HEAP, e)))
        return rc;
    return 0;
}

/* One address space: every region, then scratch. */
static int map_space(binary_build *b)
{
    sl_snapshot *s = b->s;
    const sl_layout *l = &s->layout;
    sl_pt_mem m = sl_ptbuild_mem(&b->pt);
    uint64_t root;
    if (!sl_ptbuild_alloc(&b->pt, &root))
        return sl_err(b->e, SL_ERANGE, "scratch too small for the page tables");
    int rc;
    for (unsigned i = 0; i < l->n_regions; i++)
        if ((rc = map_region(b->img.arch, &m, root, &l->regions[i], &s->stats, b->e)))
            return rc;
    if ((rc = sl_snapbuild_map_scratch(b->img.arch, &b->pt, l, root, b->e)))
        return rc;
    s->roots[0] = root;
    s->n_roots = 1;
    s->cur_root = 0;
    return 0;
}

/* A new configuration family, starting at the kernel's entry (init). */
static int seal(binary_build *b)
{
    sl_snapshot *s = b->s;
    const sl_layout *l = &s->layout;
    s->arch = b->img.arch;
    memcpy(s->regions, l->regions, sizeof l->regions);
    s->n_regions = l->n_regions;
    s->load_info.valid = true;
    s->load_info.pie = b->img.pie;
    s->load_info.base_va = b->img.base_va;
    s->load_info.load_addr = l->image_gva;
    s->load_info.entry = b->img.entry;
    s->stack_top = l->stack_top;
    s->next_kind = SL_NEXT_INITIALISE;
    s->next_addr = l->kernel_gpa + b->kimg.entry - b->kimg.base_va;
    s->family = sl_family_new();
    s->generation = 0;
    return sl_snapbuild_seal(s, &b->vis, &b->pt, b->e);
}

int sl_snapshot_from_binary(sl_snapshot **out, const uint8_t *elf, size_t len, const sl_config *cfg,
                            sl_errbuf *e)
{
    binary_build b = {.elf = elf, .len = len, .cfg = cfg, .e = e};
    int rc;
    if (!(rc = parse_images(&b)) && !(rc = place(&b)) && !(rc = load_images(&b)) && !(rc = add_regions(&b)) &&
        !(rc = map_space(&b)))
        rc = seal(&b);
    sl_pagebuf_free(&b.vis);
    sl_pagebuf_free(&b.pt.buf);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

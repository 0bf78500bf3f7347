/* Snapshot files: save/load round trips (from a binary and compacted from a
 * simulated guest, amd64 and i686), the identity against the b3sum command,
 * O(1) load (the blob is not read), page sharing between loads, configuration
 * families, hostile files (every metadata byte, every header field, truncation,
 * overlapping sections, offsets past EOF), verify catching flipped bits, atomic
 * save, and the inspect report. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"
#include "pt.h"
#include "snapfile.h"
#include "snapshot.h"
/* White-box: checks the fields the engine and the file codec build. */
#include "snapshot_impl.h"
#include "t.h"
#include "../common/sim.h"
#include "vcpu.h"

#include "../common/files.h"
#include "../common/pagemap.h"
#include "../common/min_elf.h"

/* ---------------- snapshots to save ---------------- */

static int from_binary(sl_snapshot **out, uint64_t heap)
{
    static uint8_t elf[MIN_ELF_SIZE];
    size_t len = min_elf64(elf, (min_elf){.data_memsz = 0x3000, .data_byte = 0x5A});
    sl_config cfg = {.heap_size = heap, .scratch_size = 1 << 20, .init_data = "hello file",
                     .init_data_size = 10, .init_data_perm = SL_PERM_READ | SL_PERM_WRITE};
    sl_errbuf e;
    int rc = sl_snapshot_from_binary(out, elf, len, &cfg, &e);
    if (rc)
        printf("  from_binary: %s\n", e.msg);
    return rc;
}

/* `pages` pages of pattern, mapped at 0x400000 in space 0 (every third page
 * writable, others read-only executable) and, for n_roots > 1, the first
 * half again at 0x10000000 in space 1; `parent` (NULL: none) is the
 * identity of the snapshot the simulated guest runs on. */
static int from_memory_of(sl_snapshot **out, unsigned arch, unsigned pages, unsigned n_roots, const void *sregs,
                          uint32_t sregs_len, uint64_t family, const uint8_t *parent)
{
    guest g;
    sl_errbuf e;
    if (!guest_setup(&g, arch, pages, 1 << 20, n_roots))
        return -1;
    for (uint64_t i = 0; i < g.snap_size; i++)
        g.snap[i] = (uint8_t)(i * 2654435761u >> 13);
    sl_pt_mem m = g_mem(&g);
    int rc = 0;
    for (unsigned i = 0; i < pages && !rc; i++) {
        sl_perm p = {.kind = SL_MAP_BASIC, .readable = true, .writable = i % 3 == 0, .executable = i % 3 != 0};
        rc = sl_pt_map(arch, &m, g.roots[0], 0x400000 + (uint64_t)i * SL_PAGE_SIZE,
                       SL_BASE_ADDRESS + (uint64_t)i * SL_PAGE_SIZE, SL_PAGE_SIZE, p);
        if (!rc && n_roots > 1 && i < pages / 2)
            rc = sl_pt_map(arch, &m, g.roots[1], 0x10000000 + (uint64_t)i * SL_PAGE_SIZE,
                           SL_BASE_ADDRESS + (uint64_t)i * SL_PAGE_SIZE, SL_PAGE_SIZE, p);
    }
    sl_guest_state st = {
        .layout = &g.l, .snap_mem = g.snap, .snap_size = g.snap_size, .scratch = g.scratch,
        .roots = g.roots, .n_roots = n_roots, .cur_root = n_roots - 1, .stack_top = 0x7ff000,
        .next_kind = SL_NEXT_CALL, .next_addr = 0x400010, .generation = 7, .family = family,
        .parent = parent, .sregs = sregs, .sregs_len = sregs_len,
    };
    if (!rc)
        rc = sl_snapshot_from_memory(out, &st, &e);
    if (rc)
        printf("  from_memory: %d %s\n", rc, e.msg);
    guest_free(&g);
    return rc;
}

static int from_memory(sl_snapshot **out, unsigned arch, unsigned pages, unsigned n_roots, const void *sregs,
                       uint32_t sregs_len, uint64_t family)
{
    return from_memory_of(out, arch, pages, n_roots, sregs, sregs_len, family, NULL);
}

/* A parent identity for the tests: any 32 bytes that are not all zero. */
static const uint8_t test_parent[SL_HASH_LEN] = {0xA5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                                 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 0x5A};

/* ---------------- comparing ---------------- */

static void check_same(const sl_snapshot *a, const sl_snapshot *b)
{
    CHECK_EQ(a->arch, b->arch);
    const sl_layout *x = &a->layout, *y = &b->layout;
    CHECK_EQ(x->arch, y->arch);
    CHECK_EQ(x->input_size, y->input_size);
    CHECK_EQ(x->output_size, y->output_size);
    CHECK_EQ(x->heap_size, y->heap_size);
    CHECK_EQ(x->stack_size, y->stack_size);
    CHECK_EQ(x->scratch_size, y->scratch_size);
    CHECK_EQ(x->init_data_size, y->init_data_size);
    CHECK_EQ(x->init_data_perm, y->init_data_perm);
    CHECK_EQ(x->peb_gpa, y->peb_gpa);
    CHECK_EQ(x->image_gpa, y->image_gpa);
    CHECK_EQ(x->image_size, y->image_size);
    CHECK_EQ(x->init_data_gpa, y->init_data_gpa);
    CHECK_EQ(x->heap_gpa, y->heap_gpa);
    CHECK_EQ(x->visible_end, y->visible_end);
    CHECK_EQ(x->stack_top, y->stack_top);
    CHECK_EQ(x->scratch_gpa, y->scratch_gpa);
    CHECK_EQ(x->scratch_gva, y->scratch_gva);
    CHECK_EQ(x->pt_gpa, y->pt_gpa);
    CHECK_EQ(x->exc_stack_gpa, y->exc_stack_gpa);
    CHECK_EQ(x->bk_gpa, y->bk_gpa);
    CHECK_EQ(x->n_regions, y->n_regions);
    CHECK(memcmp(x->regions, y->regions, x->n_regions * sizeof x->regions[0]) == 0);
    CHECK_EQ(a->mem_size, b->mem_size);
    CHECK_EQ(a->visible_size, b->visible_size);
    CHECK_EQ(a->pt_size, b->pt_size);
    CHECK(a->mem_size == b->mem_size && memcmp(a->mem, b->mem, a->mem_size) == 0);
    CHECK_EQ(a->n_roots, b->n_roots);
    CHECK_EQ(a->cur_root, b->cur_root);
    CHECK(memcmp(a->roots, b->roots, a->n_roots * sizeof a->roots[0]) == 0);
    CHECK_EQ(a->n_regions, b->n_regions);
    CHECK(memcmp(a->regions, b->regions, a->n_regions * sizeof a->regions[0]) == 0);
    CHECK_EQ(a->load_info.valid, b->load_info.valid);
    CHECK_EQ(a->load_info.pie, b->load_info.pie);
    CHECK_EQ(a->load_info.base_va, b->load_info.base_va);
    CHECK_EQ(a->load_info.load_addr, b->load_info.load_addr);
    CHECK_EQ(a->load_info.entry, b->load_info.entry);
    CHECK(memcmp(a->hash, b->hash, SL_HASH_LEN) == 0);
    CHECK_EQ(a->stack_top, b->stack_top);
    CHECK_EQ(a->sregs_len, b->sregs_len);
    CHECK(memcmp(a->sregs, b->sregs, a->sregs_len) == 0);
    CHECK_EQ(a->next_kind, b->next_kind);
    CHECK_EQ(a->next_addr, b->next_addr);
    CHECK_EQ(a->generation, b->generation);
    CHECK_EQ(a->stats.pages_ro, b->stats.pages_ro);
    CHECK_EQ(a->stats.pages_cow, b->stats.pages_cow);
    CHECK_EQ(a->stats.pages_pt, b->stats.pages_pt);
    CHECK_EQ(a->stats.leaves, b->stats.leaves);
    CHECK_EQ(a->stats.pages_kept, b->stats.pages_kept);
    CHECK_EQ(a->has_parent, b->has_parent);
    CHECK(memcmp(a->parent, b->parent, SL_HASH_LEN) == 0);
}

/* b3sum (the command) over `size` bytes of the file from `offset`. */
static int b3sum_range(const char *path, uint64_t offset, uint64_t size, char hex[65])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tail -c +%llu '%s' | head -c %llu | b3sum --no-names",
             (unsigned long long)offset + 1, path, (unsigned long long)size);
    FILE *p = popen(cmd, "r");
    int ok = p && fscanf(p, "%64s", hex) == 1;
    if (p)
        pclose(p);
    return ok ? 0 : -1;
}

static void roundtrip(sl_snapshot *s, const char *name)
{
    char err[256] = "";
    const char *path = tpath(name);
    int rc = sl_snapshot_save(s, path, err, sizeof err);
    if (rc)
        printf("  save: %s\n", err);
    REQUIRE(rc == 0);
    sl_snapshot *l = NULL;
    rc = sl_snapshot_load(&l, path, err, sizeof err);
    if (rc)
        printf("  load: %s\n", err);
    REQUIRE(rc == 0);
    check_same(s, l);
    CHECK_EQ(atomic_load(&l->refs), 1);
    /* The blob follows the header and the CPU state, at a page boundary. */
    const uint64_t blob_at = (0x400 + (uint64_t)s->sregs_len + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
    CHECK(l->map_base != NULL && l->mem == (uint8_t *)l->map_base + blob_at);
    CHECK(l->family != 0 && l->family != s->family);
    /* The identity is what the contents hash to. */
    uint8_t id[SL_HASH_LEN];
    sl_snapshot_compute_hash(l, id);
    CHECK(memcmp(id, s->hash, SL_HASH_LEN) == 0);
    /* ... and what the b3sum command says about the file: the bytes from the
     * blob offset to the end of the file (blob, then region records). */
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    char want[65], b3[65];
    sl_hash_hex(s->hash, want);
    REQUIRE(b3sum_range(path, blob_at, (uint64_t)st.st_size - blob_at, b3) == 0);
    CHECK(strcmp(want, b3) == 0);
    if (s->n_regions == 0) { /* the blob section alone */
        REQUIRE(b3sum_range(path, blob_at, s->mem_size, b3) == 0);
        CHECK(strcmp(want, b3) == 0);
    }
    CHECK_EQ(sl_snapshot_verify_file(path, err, sizeof err), 0);
    /* Restoring the loaded snapshot gives the same guest memory as restoring
     * the original: same tables in scratch, same visible bytes behind them. */
    sl_errbuf e;
    sl_mem *m1 = NULL, *m2 = NULL;
    REQUIRE(sl_mem_create(&m1, s, &e) == 0);
    REQUIRE(sl_mem_create(&m2, l, &e) == 0);
    CHECK_EQ(sl_mem_restore(m1, s, &e), 0);
    CHECK_EQ(sl_mem_restore(m2, l, &e), 0);
    CHECK_EQ(m1->root, m2->root);
    CHECK(memcmp(m1->scratch, m2->scratch, m1->layout.scratch_size) == 0);
    const uint8_t *p1 = sl_mem_read_ptr(m1, SL_BASE_ADDRESS, s->visible_size);
    const uint8_t *p2 = sl_mem_read_ptr(m2, SL_BASE_ADDRESS, s->visible_size);
    CHECK(p1 && p2 && memcmp(p1, p2, s->visible_size) == 0);
    CHECK_EQ(sl_mem_restore(m2, s, &e), SL_EFAMILY); /* the file's family is its own */
    sl_mem_free(m1);
    sl_mem_free(m2);
    sl_snapshot_free(l);
}

/* ---------------- tests ---------------- */

static void test_roundtrip_binary(void)
{
    sl_snapshot *s;
    REQUIRE(from_binary(&s, 8192) == 0);
    CHECK(s->n_regions > 0);
    roundtrip(s, "bin.snap");
    sl_snapshot_free(s);
}

static void test_roundtrip_memory(void)
{
    sl_snapshot *s;
    REQUIRE(from_memory(&s, SL_ARCH_AMD64, 40, 3, NULL, 0, 42) == 0);
    CHECK_EQ(s->n_regions, 0);
    roundtrip(s, "mem64.snap");
    sl_snapshot_free(s);
    REQUIRE(from_memory(&s, SL_ARCH_I686, 17, 2, NULL, 0, 43) == 0);
    roundtrip(s, "mem32.snap");
    sl_snapshot_free(s);
}

/* Special registers travel as their own section and are checked on load. */
static void test_sregs(void)
{
    char err[256];
    sl_errbuf e;
    sl_vcpu *v = NULL;
    sl_sregs_blob blob;
    if (sl_vcpu_open(&v, SL_ARCH_AMD64, &e) == 0 && sl_vcpu_reset(v, 0x1000, NULL, &e) == 0 &&
        sl_vcpu_get_sregs(v, &blob, &e) == 0) {
        sl_snapshot *s, *l;
        const uint32_t n = (uint32_t)sl_sregs_blob_len(&blob);
        REQUIRE(from_memory(&s, SL_ARCH_AMD64, 5, 1, &blob, n, 5) == 0);
        CHECK_EQ(s->sregs_len, n);
        roundtrip(s, "sregs.snap");
        REQUIRE(sl_snapshot_load(&l, tpath("sregs.snap"), err, sizeof err) == 0);
        CHECK(l->sregs_len == n && memcmp(l->sregs, &blob, n) == 0);
        sl_snapshot_free(l);
        /* The section's size must be the CPU state's own length. */
        REQUIRE(from_memory(&l, SL_ARCH_AMD64, 5, 1, &blob, n + 8, 5) == 0);
        CHECK(sl_snapshot_save(l, tpath("sregs_pad.snap"), err, sizeof err) != 0);
        CHECK(strstr(err, "sregs_size") != NULL);
        sl_snapshot_free(l);
        sl_snapshot_free(s);
    } else {
        printf("  (no KVM here: the round trip of real special registers is skipped)\n");
    }
    sl_vcpu_free(v);
    /* Garbage special registers: save refuses, and a forged file is rejected. */
    uint8_t junk[64];
    memset(junk, 0xA5, sizeof junk);
    sl_snapshot *s;
    REQUIRE(from_memory(&s, SL_ARCH_AMD64, 5, 1, junk, sizeof junk, 5) == 0);
    CHECK(sl_snapshot_save(s, tpath("junk.snap"), err, sizeof err) != 0);
    CHECK(strstr(err, "special registers") != NULL);
    CHECK(access(tpath("junk.snap"), F_OK) != 0);
    sl_snapshot_free(s);
    REQUIRE(from_memory(&s, SL_ARCH_AMD64, 5, 1, NULL, 0, 5) == 0);
    REQUIRE(sl_snapshot_save(s, tpath("nosregs.snap"), err, sizeof err) == 0);
    sl_snapshot_free(s);
    size_t len;
    uint8_t *f = read_file(tpath("nosregs.snap"), &len);
    REQUIRE(f);
    wr64(f, SF_SREGS_OFFSET, SL_SNAPFILE_HEADER_SIZE);
    wr64(f, SF_SREGS_SIZE, sizeof junk);
    memcpy(f + SL_SNAPFILE_HEADER_SIZE, junk, sizeof junk);
    REQUIRE(sl_snapfile_reseal(f, len) == 0);
    REQUIRE(write_file(tpath("forged.snap"), f, len) == 0);
    sl_snapshot *l = NULL;
    CHECK(sl_snapshot_load(&l, tpath("forged.snap"), err, sizeof err) != 0);
    CHECK(strstr(err, "special registers") != NULL);
    CHECK(l == NULL);
    free(f);
}

/* Load is O(1): it never reads the blob. Drop the file from the page cache,
 * load it, and look at which pages came back. */
static void test_load_does_not_read_blob(void)
{
    sl_snapshot *s;
    REQUIRE(from_binary(&s, 32u << 20) == 0);
    char err[256];
    const char *path = tpath("big.snap");
    REQUIRE(sl_snapshot_save(s, path, err, sizeof err) == 0);
    sl_snapshot_free(s);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    struct stat st;
    fstat(fd, &st);
    size_t pages = ((size_t)st.st_size + SL_PAGE_SIZE - 1) / SL_PAGE_SIZE;
    unsigned char *vec = malloc(pages);
    void *probe = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(probe != MAP_FAILED && vec);
    size_t before = 0, after = 0;
    REQUIRE(mincore(probe, (size_t)st.st_size, vec) == 0);
    for (size_t i = 1; i < pages; i++)
        before += vec[i] & 1;
    if (before > pages / 100) {
        printf("  (page cache would not drop the file: %zu pages resident; check skipped)\n", before);
    } else {
        sl_snapshot *l;
        REQUIRE(sl_snapshot_load(&l, path, err, sizeof err) == 0);
        REQUIRE(mincore(probe, (size_t)st.st_size, vec) == 0);
        for (size_t i = 1; i < pages; i++)
            after += vec[i] & 1;
        /* Reading the header and the region records may pull in the kernel's
         * read-ahead window around them (well under 1 MiB); a load that read
         * the 33 MiB blob would bring in thousands of pages. */
        CHECK(after < 256);
        CHECK(pages > 8000);
        sl_snapshot_free(l);
    }
    munmap(probe, (size_t)st.st_size);
    free(vec);
    close(fd);
}

/* Anonymous and shared-clean kB of the mapping that starts at addr. */
static int smaps_of(const void *addr, long *anon, long *shared_clean, long *rss)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    int in = 0, found = 0;
    unsigned long lo, hi;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = lo == (unsigned long)addr;
            found |= in;
            continue;
        }
        if (!in)
            continue;
        sscanf(line, "Anonymous: %ld kB", anon);
        sscanf(line, "Shared_Clean: %ld kB", shared_clean);
        sscanf(line, "Rss: %ld kB", rss);
    }
    fclose(f);
    return found ? 0 : -1;
}


/* Two loads of one file map the same physical pages: the blob lives once in
 * the page cache and neither mapping holds a private copy. */
static void test_two_loads_share_pages(void)
{
    sl_snapshot *s, *a, *b;
    char err[256];
    REQUIRE(from_binary(&s, 4u << 20) == 0);
    const char *path = tpath("shared.snap");
    REQUIRE(sl_snapshot_save(s, path, err, sizeof err) == 0);
    sl_snapshot_free(s);
    REQUIRE(sl_snapshot_load(&a, path, err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&b, path, err, sizeof err) == 0);
    CHECK(a->map_base != b->map_base);
    CHECK_EQ(a->family, b->family);
    volatile uint8_t sink = 0;
    for (uint64_t off = 0; off < a->mem_size; off += SL_PAGE_SIZE)
        sink ^= a->mem[off] ^ b->mem[off];
    (void)sink;
    long anon_a = -1, sc_a = -1, rss_a = -1, anon_b = -1, sc_b = -1, rss_b = -1;
    REQUIRE(smaps_of(a->map_base, &anon_a, &sc_a, &rss_a) == 0);
    REQUIRE(smaps_of(b->map_base, &anon_b, &sc_b, &rss_b) == 0);
    long blob_kb = (long)(a->mem_size / 1024);
    CHECK_EQ(anon_a, 0);
    CHECK_EQ(anon_b, 0);
    /* Every resident blob page is counted as shared: mapped by both. */
    CHECK(sc_a >= blob_kb && sc_b >= blob_kb);
    CHECK(rss_a >= blob_kb && rss_b >= blob_kb);
    /* With CAP_SYS_ADMIN the frame numbers themselves can be compared. */
    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm >= 0 && pfn_of(pm, a->mem)) {
        unsigned same = 0, n = 0;
        for (uint64_t off = 0; off < a->mem_size; off += 16 * SL_PAGE_SIZE, n++)
            same += pfn_of(pm, a->mem + off) == pfn_of(pm, b->mem + off) && pfn_of(pm, a->mem + off);
        CHECK_EQ(same, n);
    }
    if (pm >= 0)
        close(pm);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
}

/* Every file of one configuration loads into one family; restoring across
 * files of that family works, another configuration is refused. */
static void test_families(void)
{
    sl_snapshot *s1, *s2, *s3, *a, *b, *c;
    char err[256];
    sl_errbuf e;
    REQUIRE(from_memory(&s1, SL_ARCH_AMD64, 6, 1, NULL, 0, 100) == 0);
    REQUIRE(from_memory(&s2, SL_ARCH_AMD64, 9, 2, NULL, 0, 200) == 0);
    REQUIRE(from_binary(&s3, 8192) == 0);
    REQUIRE(sl_snapshot_save(s1, tpath("f1.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(s2, tpath("f2.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_save(s3, tpath("f3.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&a, tpath("f1.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&b, tpath("f2.snap"), err, sizeof err) == 0);
    REQUIRE(sl_snapshot_load(&c, tpath("f3.snap"), err, sizeof err) == 0);
    CHECK_EQ(a->family, b->family);
    CHECK(a->family != c->family);
    sl_mem *m;
    REQUIRE(sl_mem_create(&m, a, &e) == 0);
    CHECK_EQ(sl_mem_restore(m, a, &e), 0);
    CHECK_EQ(sl_mem_restore(m, b, &e), 0);
    CHECK_EQ(m->root, b->roots[b->cur_root]);
    CHECK_EQ(sl_mem_restore(m, c, &e), SL_EFAMILY);
    CHECK_EQ(sl_mem_restore(m, s1, &e), SL_EFAMILY);
    sl_mem_free(m);
    sl_snapshot *a2;
    REQUIRE(sl_snapshot_load(&a2, tpath("f1.snap"), err, sizeof err) == 0);
    CHECK_EQ(a2->family, a->family);
    sl_snapshot_free(a2);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    sl_snapshot_free(c);
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    sl_snapshot_free(s3);
}

/* Load (or verify) of the bytes f[0..len) written to a scratch file. */
static int try_bytes(const uint8_t *f, size_t len, bool verify, char *err, size_t errlen)
{
    /* A memfd, reached by path: thousands of variants without disk writes. */
    static int mfd = -1;
    static char path[64];
    if (mfd < 0) {
        mfd = memfd_create("try.snap", MFD_CLOEXEC);
        snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
    }
    if (mfd < 0 || ftruncate(mfd, 0) || pwrite(mfd, f, len, 0) != (ssize_t)len)
        return 1;
    if (verify)
        return sl_snapshot_verify_file(path, err, errlen);
    sl_snapshot *s = NULL;
    int rc = sl_snapshot_load(&s, path, err, errlen);
    if (rc == 0) {
        /* Whatever loads must keep the invariants restore relies on. */
        CHECK(s->mem_size == s->visible_size + s->pt_size);
        CHECK(s->n_roots >= 1 && s->n_roots <= SL_BK_MAX_ROOTS && s->cur_root < s->n_roots);
        for (unsigned i = 0; i < s->n_roots; i++)
            CHECK(s->roots[i] >= s->layout.pt_gpa && s->roots[i] - s->layout.pt_gpa < s->pt_size);
        CHECK(s->pt_size <= s->layout.exc_stack_gpa - s->layout.pt_gpa);
        CHECK(SL_BASE_ADDRESS + s->visible_size <= s->layout.scratch_gpa);
        CHECK((uint8_t *)s->mem + s->mem_size <= (uint8_t *)s->map_base + s->map_len);
        static const uint8_t zero[SL_HASH_LEN];
        CHECK(s->has_parent ? memcmp(s->parent, zero, SL_HASH_LEN) != 0 : s->stats.pages_kept == 0);
        CHECK(s->stats.pages_kept <= s->visible_size / SL_PAGE_SIZE);
        sl_snapshot_free(s);
    } else {
        CHECK(s == NULL);
        CHECK(err[0] != 0);
    }
    return rc;
}

static uint8_t *saved_file(size_t *len, bool binary)
{
    sl_snapshot *s;
    char err[256];
    if (binary ? from_binary(&s, 8192) : from_memory(&s, SL_ARCH_AMD64, 6, 2, NULL, 0, 9))
        return NULL;
    int rc = sl_snapshot_save(s, tpath("base.snap"), err, sizeof err);
    sl_snapshot_free(s);
    return rc ? NULL : read_file(tpath("base.snap"), len);
}

/* Any single corrupted byte before the blob (header, sregs area, padding) or
 * in the region records fails load with a message; so does verify. */
static void test_every_metadata_byte(void)
{
    size_t len;
    uint8_t *f = saved_file(&len, true);
    REQUIRE(f);
    char err[256];
    REQUIRE(try_bytes(f, len, false, err, sizeof err) == 0);
    unsigned load_ok = 0, verify_ok = 0, n = 0;
    uint64_t regions_off = rd64(f, SF_REGIONS_OFFSET);
    for (size_t i = 0; i < len; i++) {
        if (i == SL_PAGE_SIZE)
            i = regions_off; /* the blob is tested with verify below */
        uint8_t keep = f[i];
        f[i] ^= (uint8_t)(1u << (i % 8));
        err[0] = 0;
        load_ok += try_bytes(f, len, false, err, sizeof err) == 0;
        if (i % 64 == 0) /* verify = load + hash; sample it */
            verify_ok += try_bytes(f, len, true, err, sizeof err) == 0;
        f[i] = keep;
        n++;
    }
    CHECK_EQ(load_ok, 0);
    CHECK_EQ(verify_ok, 0);
    CHECK(n > SL_PAGE_SIZE);
    free(f);
}

/* Each header field, forged with a valid checksum, to hostile values: load
 * never crashes and never yields a snapshot that breaks an invariant; the
 * fields that matter are rejected with their name in the message. */
static void test_every_header_field_forged(void)
{
    for (int binary = 0; binary < 2; binary++) {
        size_t len;
        uint8_t *f = saved_file(&len, binary);
        REQUIRE(f);
        uint8_t *g = malloc(len);
        REQUIRE(g);
        char err[256];
        const uint64_t vals[] = {0, 1, 0x1000, 0x7fffffff, 0xffffffff, 1ull << 32, 1ull << 47,
                                 0x8000000000000000ull, UINT64_MAX, UINT64_MAX - 0xfff};
        for (unsigned off = 0; off < SF_ROOTS + 8 * 4; off += 4) {
            if (off >= SF_CHECKSUM && off < SF_CHECKSUM + 32)
                continue;
            for (size_t k = 0; k < sizeof vals / sizeof vals[0] + 2; k++) {
                memcpy(g, f, len);
                uint64_t v = k < sizeof vals / sizeof vals[0] ? vals[k] : rd64(f, off) + (k & 1 ? 0x1000 : -0x1000ull);
                wr64(g, off, v);
                sl_snapfile_reseal(g, len);
                err[0] = 0;
                try_bytes(g, len, false, err, sizeof err); /* checks invariants when it loads */
            }
        }
        free(g);
        free(f);
    }
    /* Targeted: the message names the field. */
    size_t len;
    uint8_t *f = saved_file(&len, false);
    REQUIRE(f);
    static const struct {
        unsigned off;
        uint64_t val;
        bool is32;
        const char *field;
    } cases[] = {
        {SF_VERSION, 1, true, "`version`"},
        {SF_VERSION, 2, true, "`version`"},
        {SF_VERSION, 6, true, "`version`"},
        {SF_ARCH, 3, true, "`arch`"},
        {SF_FLAGS, 1, true, "`flags`"},
        {SF_PT_SIZE, 1ull << 40, false, "`pt_size`"},
        {SF_VISIBLE_SIZE, 0x1000, false, "`blob_size`"},
        {SF_VISIBLE_SIZE, 0x1001, false, "`visible_size`"},
        {SF_SCRATCH_SIZE, 0x1234, false, "`scratch_size`"},
        {SF_SCRATCH_SIZE, 1ull << 24, false, "`scratch_gpa`"},
        {SF_PT_GPA, 0x5000, false, "`pt_gpa`"},
        {SF_N_ROOTS, 0, true, "`n_roots`"},
        {SF_N_ROOTS, 65, true, "`n_roots`"},
        {SF_CUR_ROOT, 2, true, "`cur_root`"},
        {SF_ROOTS, 0x5000, false, "`roots`"},
        {SF_ROOTS + 8, 0, false, "`roots`"},
        {SF_ROOTS + 16, 0xfffff000, false, "`roots`"},
        {SF_NEXT_KIND, 3, true, "`next_kind`"},
        {SF_NEXT_ADDR, 0, false, "`next_addr`"},
        {SF_NEXT_ADDR, 0x0000800000000000ull, false, "`next_addr`"},
        {SF_STACK_TOP, 0x0001000000000000ull, false, "`stack_top`"},
        {SF_SREGS_SIZE, SL_SREGS_MAX + 1, false, "`sregs_size`"},
        {SF_SREGS_OFFSET, 8, false, "`sregs_offset`"},
        {SF_N_REGIONS, 1, true, "`n_regions`"},
        {SF_PAGES_PT, 0, false, "`pages_pt`"},
        {SF_LEAVES, 0, false, "`leaves`"},
        {SF_LOAD_FLAGS, 4, true, "`load_flags`"},
        {SF_INIT_DATA_PERM, 1, true, "`init_data_perm`"},
        {SF_IMAGE_GPA, 0x5000, false, "`image_gpa`"},
        {SF_HEADER_SIZE, 0x200, true, "`header_size`"},
    };
    uint8_t *g = malloc(len);
    REQUIRE(g);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(g, f, len);
        if (cases[i].is32)
            wr32(g, cases[i].off, (uint32_t)cases[i].val);
        else
            wr64(g, cases[i].off, cases[i].val);
        sl_snapfile_reseal(g, len);
        char err[256] = "";
        int rc = try_bytes(g, len, false, err, sizeof err);
        if (rc == 0 || !strstr(err, cases[i].field))
            printf("  case %zu (%s): rc %d, message: %s\n", i, cases[i].field, rc, err);
        CHECK(rc != 0 && strstr(err, cases[i].field));
    }
    /* Reserved bytes and padding must be zero. */
    memcpy(g, f, len);
    g[SF_RESERVED2 + 1] = 1;
    sl_snapfile_reseal(g, len);
    char err[256];
    CHECK(try_bytes(g, len, false, err, sizeof err) != 0 && strstr(err, "reserved"));
    memcpy(g, f, len);
    g[SL_PAGE_SIZE - 1] = 1;
    sl_snapfile_reseal(g, len);
    CHECK(try_bytes(g, len, false, err, sizeof err) != 0 && strstr(err, "padding"));
    free(g);
    free(f);
}

/* Truncated at every page boundary, at random points and by one byte; or
 * extended: always a clear error. */
static void test_truncation(void)
{
    size_t len;
    uint8_t *f = saved_file(&len, true);
    REQUIRE(f);
    char err[256];
    unsigned loaded = 0, n = 0;
    srand(12345);
    for (size_t cut = 0; cut < len; cut += SL_PAGE_SIZE, n++)
        loaded += try_bytes(f, cut, false, err, sizeof err) == 0;
    for (int i = 0; i < 200; i++, n++)
        loaded += try_bytes(f, (size_t)rand() % len, false, err, sizeof err) == 0;
    loaded += try_bytes(f, len - 1, false, err, sizeof err) == 0;
    CHECK(strstr(err, "`file_size`") != NULL);
    uint8_t *big = calloc(1, len + 1);
    REQUIRE(big);
    memcpy(big, f, len);
    loaded += try_bytes(big, len + 1, false, err, sizeof err) == 0;
    CHECK_EQ(loaded, 0);
    CHECK(n > 200);
    free(big);
    free(f);
}

/* Sections that overlap each other or the header, or run past EOF, even with
 * a forged checksum. */
static void test_overlap_and_eof(void)
{
    size_t len;
    uint8_t *f = saved_file(&len, true);
    REQUIRE(f);
    uint8_t *g = malloc(len);
    REQUIRE(g);
    uint64_t blob_size = rd64(f, SF_BLOB_SIZE), reg_off = rd64(f, SF_REGIONS_OFFSET);
    static const char *want[] = {"`blob_offset`", "`blob_offset`", "`blob_offset`", "`blob_size`",
                                 "`blob_size`",   "`regions_offset`", "`regions_offset`", "`regions_size`",
                                 "`sregs_offset`", "`sregs_offset`", "`file_size`"};
    for (int c = 0; c < 11; c++) {
        memcpy(g, f, len);
        switch (c) {
        case 0: wr64(g, SF_BLOB_OFFSET, 0); break;                       /* blob over the header */
        case 1: wr64(g, SF_BLOB_OFFSET, 0x800); break;                   /* not page-aligned */
        case 2: wr64(g, SF_BLOB_OFFSET, len + SL_PAGE_SIZE); break;      /* past EOF */
        case 3: wr64(g, SF_BLOB_SIZE, blob_size + SL_PAGE_SIZE); break;  /* past EOF */
        case 4: wr64(g, SF_BLOB_SIZE, UINT64_MAX & ~0xfffull); break;    /* wraps */
        case 5: wr64(g, SF_REGIONS_OFFSET, reg_off - 32); break;         /* inside the blob */
        case 6: wr64(g, SF_REGIONS_OFFSET, 0x400); break;                /* over the header */
        case 7: wr64(g, SF_REGIONS_SIZE, rd64(f, SF_REGIONS_SIZE) + 32); break; /* past EOF */
        case 8: wr64(g, SF_SREGS_OFFSET, 0x100); wr64(g, SF_SREGS_SIZE, 64); break;          /* in the header */
        case 9: wr64(g, SF_SREGS_OFFSET, SL_PAGE_SIZE - 8); wr64(g, SF_SREGS_SIZE, 64); break; /* into the blob */
        case 10: wr64(g, SF_FILE_SIZE, len + 4096); break;
        }
        sl_snapfile_reseal(g, len);
        char err[256] = "";
        int rc = try_bytes(g, len, false, err, sizeof err);
        if (rc == 0 || !strstr(err, want[c]))
            printf("  case %d: rc %d, message: %s\n", c, rc, err);
        CHECK(rc != 0 && strstr(err, want[c]));
    }
    free(g);
    free(f);
}

/* verify recomputes the identity: any flipped bit in the blob is SL_EHASH,
 * while load (which does not read the blob) still succeeds. */
static void test_verify_flipped_bits(void)
{
    sl_snapshot *s;
    REQUIRE(from_binary(&s, 64 * 1024) == 0);
    char err[256];
    const char *path = tpath("flip.snap");
    REQUIRE(sl_snapshot_save(s, path, err, sizeof err) == 0);
    uint64_t blob = s->mem_size;
    sl_snapshot_free(s);
    CHECK_EQ(sl_snapshot_verify_file(path, err, sizeof err), 0);
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    srand(777);
    unsigned caught = 0, loads = 0, n = 0;
    for (int i = 0; i < 300; i++, n++) {
        uint64_t pos = i == 0 ? 0 : i == 1 ? blob - 1 : i == 2 ? blob - blob / 8 : (uint64_t)rand() % blob;
        uint64_t off = SL_PAGE_SIZE + pos;
        uint8_t b;
        REQUIRE(pread(fd, &b, 1, (off_t)off) == 1);
        uint8_t x = b ^ (uint8_t)(1u << (rand() % 8));
        REQUIRE(pwrite(fd, &x, 1, (off_t)off) == 1);
        err[0] = 0;
        caught += sl_snapshot_verify_file(path, err, sizeof err) == SL_EHASH;
        sl_snapshot *l = NULL;
        loads += sl_snapshot_load(&l, path, err, sizeof err) == 0;
        sl_snapshot_free(l);
        REQUIRE(pwrite(fd, &b, 1, (off_t)off) == 1);
    }
    CHECK_EQ(caught, n);
    CHECK_EQ(loads, n);
    CHECK_EQ(sl_snapshot_verify_file(path, err, sizeof err), 0);
    close(fd);
}

static unsigned count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    unsigned n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

/* Save goes through a temporary file and a rename: nothing else is left
 * behind, and a failed save leaves neither a partial file nor a temporary. */
static void test_atomic_save(void)
{
    char sub[512], err[256];
    snprintf(sub, sizeof sub, "%s/atomic", g_dir);
    REQUIRE(mkdir(sub, 0755) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/a.snap", sub);
    sl_snapshot *s1, *s2;
    REQUIRE(from_memory(&s1, SL_ARCH_AMD64, 5, 1, NULL, 0, 1) == 0);
    REQUIRE(from_binary(&s2, 2u << 20) == 0);
    REQUIRE(sl_snapshot_save(s1, path, err, sizeof err) == 0);
    CHECK_EQ(count_entries(sub, ""), 3); /* ".", "..", a.snap */
    /* Overwrite: the new content replaces the old in one step. */
    REQUIRE(sl_snapshot_save(s2, path, err, sizeof err) == 0);
    CHECK_EQ(count_entries(sub, ""), 3);
    sl_snapshot *l;
    REQUIRE(sl_snapshot_load(&l, path, err, sizeof err) == 0);
    CHECK(memcmp(l->hash, s2->hash, SL_HASH_LEN) == 0);
    sl_snapshot_free(l);

    /* A write that fails half-way (file size limit): the old file survives
     * intact and no temporary remains. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = sl_snapshot_save(s2, path, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_EQ(rc, SL_EIO);
    CHECK(strstr(err, "write") != NULL);
    CHECK_EQ(count_entries(sub, ""), 3);
    CHECK_EQ(sl_snapshot_verify_file(path, err, sizeof err), 0);
    REQUIRE(sl_snapshot_load(&l, path, err, sizeof err) == 0);
    CHECK(memcmp(l->hash, s2->hash, SL_HASH_LEN) == 0);
    sl_snapshot_free(l);

    /* A directory that does not exist: an error, nothing created. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/missing/b.snap", sub);
    CHECK_EQ(sl_snapshot_save(s1, bad, err, sizeof err), SL_EIO);
    CHECK(strstr(err, "missing") != NULL);
    CHECK_EQ(count_entries(sub, ""), 3);
    /* A directory we may not write (only meaningful when not root). */
    if (geteuid() != 0) {
        char ro[600], rp[700];
        snprintf(ro, sizeof ro, "%s/ro", sub);
        mkdir(ro, 0555);
        snprintf(rp, sizeof rp, "%s/c.snap", ro);
        CHECK(sl_snapshot_save(s1, rp, err, sizeof err) != 0);
        CHECK_EQ(count_entries(ro, ""), 2);
        rmdir(ro);
    }
    sl_snapshot_free(s1);
    sl_snapshot_free(s2);
    unlink(path);
    rmdir(sub);
}


static unsigned count_str(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_inspect(void)
{
    sl_snapshot *s;
    char err[256], line[256], hex[65];
    REQUIRE(from_memory(&s, SL_ARCH_AMD64, 30, 2, NULL, 0, 3) == 0);
    REQUIRE(sl_snapshot_save(s, tpath("insp.snap"), err, sizeof err) == 0);
    lines out = {0};
    REQUIRE(sl_snapshot_inspect(tpath("insp.snap"), collect, &out, err, sizeof err) == 0);
    REQUIRE(out.buf);
    sl_hash_hex(s->hash, hex);
    snprintf(line, sizeof line, "identity: %s\n", hex);
    CHECK(strstr(out.buf, line) != NULL);
    snprintf(line, sizeof line, "blob: offset=4096 size=%llu ", (unsigned long long)s->mem_size);
    CHECK(strstr(out.buf, line) != NULL);
    CHECK(strstr(out.buf, "address spaces: 2 (current 1)\n") != NULL);
    CHECK(strstr(out.buf, "arch: amd64\n") != NULL);
    CHECK(strstr(out.buf, "generation: 7\n") != NULL);
    CHECK(strstr(out.buf, "next: call (dispatch) at 0x400010\n") != NULL);
    snprintf(line, sizeof line, "pages: %llu read-only, %llu cow, %llu page tables",
             (unsigned long long)s->stats.pages_ro, (unsigned long long)s->stats.pages_cow,
             (unsigned long long)s->stats.pages_pt);
    CHECK(strstr(out.buf, line) != NULL);
    /* The map: two scratch lines per space (the call stack's guard page, left
     * unmapped, splits the window); space 0 alternates cow (every third page)
     * and read-only executable runs; space 1 has the first 15 pages. */
    CHECK_EQ(count_str(out.buf, "scratch window"), 4);
    CHECK(strstr(out.buf, "  0x0000000000400000-0x0000000000401000 cow r-- blob (1 page)\n") != NULL);
    CHECK(strstr(out.buf, "  0x0000000000401000-0x0000000000403000 ro  r-x blob (2 pages)\n") != NULL);
    CHECK(strstr(out.buf, "  0x0000000010000000-0x0000000010001000 cow r-- blob (1 page)\n") != NULL);
    CHECK_EQ(count_str(out.buf, "address space 0 (root"), 1);
    CHECK_EQ(count_str(out.buf, "address space 1 (root"), 1);
    CHECK_EQ(count_str(out.buf, " blob ("), 20 + 10);
    if (t_failed_now)
        printf("%s", out.buf);
    free(out.buf);
    /* From a binary: the region records are listed and covered by the identity. */
    sl_snapshot_free(s);
    REQUIRE(from_binary(&s, 8192) == 0);
    REQUIRE(sl_snapshot_save(s, tpath("insp2.snap"), err, sizeof err) == 0);
    out = (lines){0};
    REQUIRE(sl_snapshot_inspect(tpath("insp2.snap"), collect, &out, err, sizeof err) == 0);
    REQUIRE(out.buf);
    snprintf(line, sizeof line, "identity covers: offset=4096 size=%llu ",
             (unsigned long long)(s->mem_size + s->n_regions * SL_REGION_RECORD_SIZE));
    CHECK(strstr(out.buf, line) != NULL);
    CHECK(strstr(out.buf, "next: initialise (entry)") != NULL);
    CHECK_EQ(count_str(out.buf, "\nregion "), s->n_regions);
    CHECK(strstr(out.buf, " heap gpa=") != NULL);
    CHECK_EQ(count_str(out.buf, "scratch window"), 2);
    if (t_failed_now)
        printf("%s", out.buf);
    free(out.buf);
    sl_snapshot_free(s);
    /* Errors come back through err. */
    CHECK_EQ(sl_snapshot_inspect(tpath("nope.snap"), collect, &out, err, sizeof err), SL_ENOTFOUND);
    CHECK(strstr(err, "nope.snap") != NULL);
}

/* ---------------- lineage (format version 4) ---------------- */

/* The parent travels in the file (header 0x1A0..0x1D0) and comes back
 * through the public call; it is not part of the identity. */
static void test_lineage_roundtrip(void)
{
    sl_snapshot *s, *orphan;
    REQUIRE(from_memory_of(&s, SL_ARCH_AMD64, 12, 2, NULL, 0, 11, test_parent) == 0);
    REQUIRE(from_memory(&orphan, SL_ARCH_AMD64, 12, 2, NULL, 0, 11) == 0);
    CHECK(s->has_parent && !orphan->has_parent);
    /* Every page the guest maps is the parent's, so each stays where it was. */
    CHECK_EQ(s->stats.pages_kept, 12);
    CHECK_EQ(orphan->stats.pages_kept, 0);
    CHECK(memcmp(s->hash, orphan->hash, SL_HASH_LEN) == 0); /* the parent is not in the identity */
    uint8_t id[SL_HASH_LEN];
    memset(id, 0xEE, sizeof id);
    CHECK_EQ(sl_snapshot_parent_id(orphan, id), SL_ENOTFOUND);
    CHECK_EQ(id[0], 0xEE); /* untouched */
    CHECK_EQ(sl_snapshot_parent_id(s, id), 0);
    CHECK(memcmp(id, test_parent, SL_HASH_LEN) == 0);
    roundtrip(s, "lineage.snap"); /* check_same compares parent and pages_kept */
    roundtrip(orphan, "orphan.snap");
    size_t len;
    uint8_t *f = read_file(tpath("lineage.snap"), &len);
    REQUIRE(f);
    CHECK_EQ(rd64(f, SF_VERSION) & 0xffffffff, SL_SNAPFILE_VERSION);
    CHECK_EQ(rd64(f, SF_LINEAGE_FLAGS) & 0xffffffff, SL_SNAPFILE_HAS_PARENT);
    CHECK(memcmp(f + SF_PARENT, test_parent, SL_HASH_LEN) == 0);
    CHECK_EQ(rd64(f, SF_PAGES_KEPT), 12);
    free(f);
    sl_snapshot *l;
    char err[256], hex[65], want[160];
    REQUIRE(sl_snapshot_load(&l, tpath("lineage.snap"), err, sizeof err) == 0);
    CHECK_EQ(sl_snapshot_parent_id(l, id), 0);
    CHECK(memcmp(id, test_parent, SL_HASH_LEN) == 0);
    sl_snapshot_free(l);
    /* inspect names it, text and JSON, and says how many pages stayed. */
    sl_hash_hex(test_parent, hex);
    lines out = {0};
    REQUIRE(sl_snapshot_inspect(tpath("lineage.snap"), collect, &out, err, sizeof err) == 0);
    snprintf(want, sizeof want, "\nparent: %s (12 of 12 pages kept at their offsets in its blob)\n", hex);
    CHECK(out.buf && strstr(out.buf, want) && strstr(out.buf, "format: sandlet snapshot file version 5\n"));
    free(out.buf);
    char *json = NULL;
    REQUIRE(sl_snapshot_inspect_json(tpath("lineage.snap"), &json, err, sizeof err) == 0);
    snprintf(want, sizeof want, "\"parent\":{\"identity\":\"%s\",\"pages_kept\":12}", hex);
    CHECK(json && strstr(json, want) && strstr(json, "\"format_version\":5,"));
    free(json);
    out = (lines){0};
    REQUIRE(sl_snapshot_inspect(tpath("orphan.snap"), collect, &out, err, sizeof err) == 0);
    CHECK(out.buf && strstr(out.buf, "\nparent: none\n"));
    free(out.buf);
    sl_snapshot_free(s);
    sl_snapshot_free(orphan);
}

/* The bytes a version 3 or 4 writer wrote for a full file written now:
 * the version, and zeros for the fields version 5 added. */
static void as_old_version(uint8_t *f, uint32_t version)
{
    wr32(f, SF_VERSION, version);
    for (unsigned off = SF_OWN_SIZE; off <= SF_PARENT_LAYOUT; off += 8)
        wr64(f, off, 0);
}

/* A version-3 file (what the previous release wrote: the lineage bytes were
 * reserved, zero) loads as a snapshot without a parent; one with anything
 * in those bytes is refused, as version 3 readers refused it. */
static void test_version3_loads(void)
{
    size_t len;
    uint8_t *f = saved_file(&len, false);
    REQUIRE(f);
    as_old_version(f, 3);
    REQUIRE(sl_snapfile_reseal(f, len) == 0);
    char err[256] = "";
    int rc = try_bytes(f, len, false, err, sizeof err);
    if (rc)
        printf("  version 3: %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(try_bytes(f, len, true, err, sizeof err), 0);
    REQUIRE(write_file(tpath("v3.snap"), f, len) == 0);
    sl_snapshot *l = NULL;
    REQUIRE(sl_snapshot_load(&l, tpath("v3.snap"), err, sizeof err) == 0);
    uint8_t id[SL_HASH_LEN];
    CHECK_EQ(sl_snapshot_parent_id(l, id), SL_ENOTFOUND);
    sl_snapshot_free(l);
    lines out = {0};
    REQUIRE(sl_snapshot_inspect(tpath("v3.snap"), collect, &out, err, sizeof err) == 0);
    CHECK(out.buf && strstr(out.buf, "format: sandlet snapshot file version 3\n") &&
          strstr(out.buf, "\nparent: none\n"));
    free(out.buf);
    char *json = NULL;
    REQUIRE(sl_snapshot_inspect_json(tpath("v3.snap"), &json, err, sizeof err) == 0);
    CHECK(json && strstr(json, "\"format_version\":3,") && strstr(json, "\"parent\":null"));
    free(json);
    /* Real version-3 files, written by the release before lineage: the fuzz
     * seeds whose mode byte (the first) is 0 are whole files with a valid
     * checksum (fuzz/fuzz_snapfile.c). Paths from the repository's root,
     * where tests/run runs the tests. */
    static const char *seeds[] = {"fuzz/corpus/fuzz_snapfile/mem_amd64_sregs_raw",
                                  "fuzz/corpus/fuzz_snapfile/mem_i686_raw"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        size_t n;
        uint8_t *seed = read_file(seeds[i], &n);
        if (!seed)
            printf("  %s: missing (run from the repository's root)\n", seeds[i]);
        REQUIRE(seed && n > SL_SNAPFILE_HEADER_SIZE && seed[0] == 0 && rd64(seed + 1, SF_VERSION) % (1ull << 32) == 3);
        CHECK_EQ(try_bytes(seed + 1, n - 1, true, err, sizeof err), 0);
        REQUIRE(write_file(tpath("seed.snap"), seed + 1, n - 1) == 0);
        REQUIRE(sl_snapshot_load(&l, tpath("seed.snap"), err, sizeof err) == 0);
        CHECK_EQ(sl_snapshot_parent_id(l, id), SL_ENOTFOUND);
        sl_snapshot_free(l);
        free(seed);
    }
    /* Lineage bytes in a version-3 file: each one alone is refused. */
    static const unsigned at[] = {SF_PARENT,     SF_PARENT + 31, SF_LINEAGE_FLAGS,
                                  SF_PAGES_KEPT, SF_RESERVED2,   SF_RESERVED2 + 3};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        uint8_t keep = f[at[i]];
        f[at[i]] = 1;
        REQUIRE(sl_snapfile_reseal(f, len) == 0);
        err[0] = 0;
        rc = try_bytes(f, len, false, err, sizeof err);
        CHECK(rc == SL_EFORMAT && strstr(err, "reserved") && strstr(err, "version 3"));
        f[at[i]] = keep;
    }
    /* The fields of version 5 (child files) in a version-3 file: refused
     * before the checksum, which cannot say which bytes it covers. */
    static const unsigned v5[] = {SF_PARENT_NAME_SIZE, SF_PARENT_NAME_OFFSET, SF_OWN_SIZE,  SF_RUNS_OFFSET,
                                  SF_RUNS_SIZE,        SF_INDEX_OFFSET,       SF_INDEX_SIZE + 7, SF_PARENT_LAYOUT + 7};
    for (size_t i = 0; i < sizeof v5 / sizeof v5[0]; i++) {
        uint8_t keep = f[v5[i]];
        f[v5[i]] = 1;
        err[0] = 0;
        rc = try_bytes(f, len, false, err, sizeof err);
        CHECK(rc == SL_EFORMAT && strstr(err, "reserved") && strstr(err, "version 3 has no child files"));
        f[v5[i]] = keep;
    }
    free(f);
}

/* Hostile lineage fields, with a valid checksum: each is refused with the
 * field named. */
static void test_lineage_hostile(void)
{
    sl_snapshot *s;
    char err[256];
    REQUIRE(from_memory_of(&s, SL_ARCH_AMD64, 6, 1, NULL, 0, 9, test_parent) == 0);
    REQUIRE(sl_snapshot_save(s, tpath("hostile.snap"), err, sizeof err) == 0);
    sl_snapshot_free(s);
    size_t len, olen;
    uint8_t *f = read_file(tpath("hostile.snap"), &len), *orphan = saved_file(&olen, false);
    REQUIRE(f && orphan);
    uint8_t *g = malloc(len > olen ? len : olen);
    REQUIRE(g);
    REQUIRE(try_bytes(f, len, false, err, sizeof err) == 0);
    static const struct {
        bool orphan;     /* start from the file without a parent */
        unsigned off;    /* what to change */
        uint64_t val;    /* written as u32 at SF_LINEAGE_FLAGS, u64 at SF_PAGES_KEPT, a byte elsewhere */
        const char *want;
    } cases[] = {
        {false, SF_LINEAGE_FLAGS, 4, "`lineage_flags` (0x4) has unknown bits"},
        {false, SF_LINEAGE_FLAGS, 0x80000001u, "`lineage_flags`"},
        {false, SF_LINEAGE_FLAGS, 0, "says no parent"},            /* parent bytes without the flag */
        {false, SF_PAGES_KEPT, 7, "`pages_kept` (0x7) exceeds"},    /* 6 pages in the blob */
        {false, SF_PAGES_KEPT, UINT64_MAX, "`pages_kept`"},
        {true, SF_LINEAGE_FLAGS, 1, "`parent` is all zeros"},      /* the flag without a parent */
        {true, SF_PAGES_KEPT, 1, "says no parent"},                /* kept pages without a parent */
        {true, SF_PARENT + 7, 0x40, "says no parent"},             /* a parent byte without the flag */
        {false, SF_RESERVED2, 1, "reserved"},
        {false, SF_PARENT_LAYOUT + 7, 1, "`parent_layout`"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].orphan ? olen : len;
        memcpy(g, cases[i].orphan ? orphan : f, n);
        if (cases[i].off == SF_LINEAGE_FLAGS)
            wr32(g, SF_LINEAGE_FLAGS, (uint32_t)cases[i].val);
        else if (cases[i].off == SF_PAGES_KEPT)
            wr64(g, SF_PAGES_KEPT, cases[i].val);
        else
            g[cases[i].off] = (uint8_t)cases[i].val;
        REQUIRE(sl_snapfile_reseal(g, n) == 0);
        err[0] = 0;
        int rc = try_bytes(g, n, false, err, sizeof err);
        if (rc != SL_EFORMAT || !strstr(err, cases[i].want))
            printf("  case %zu (%s): rc %d, message: %s\n", i, cases[i].want, rc, err);
        CHECK(rc == SL_EFORMAT && strstr(err, cases[i].want));
    }
    /* Any parent that is not all zeros is an identity (the library cannot
     * know every snapshot): one byte set is enough. */
    memcpy(g, orphan, olen);
    wr32(g, SF_LINEAGE_FLAGS, 1);
    g[SF_PARENT + 31] = 1;
    REQUIRE(sl_snapfile_reseal(g, olen) == 0);
    CHECK_EQ(try_bytes(g, olen, false, err, sizeof err), 0);
    free(g);
    free(f);
    free(orphan);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Every path the library opens for reading is checked without blocking: a
 * FIFO with no writer and a directory are errors naming the path (issue 9,
 * kind 3), for snapshot files and guest ELFs alike. */
static void test_special_files(void)
{
    const char *fifo = tpath("special.fifo");
    unlink(fifo);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    const char *paths[] = {fifo, tpath("")};
    for (size_t i = 0; i < 2; i++) {
        char err[512] = "";
        sl_snapshot *s = NULL;
        CHECK(sl_snapshot_load(&s, paths[i], err, sizeof err) != 0);
        CHECK(s == NULL && strstr(err, "not a regular file") && strstr(err, paths[i]));
        CHECK(sl_snapshot_verify_file(paths[i], err, sizeof err) != 0 && strstr(err, "not a regular file"));
        sl_sandbox *sb = NULL;
        CHECK(sl_sandbox_new_from_file(&sb, paths[i], NULL, err, sizeof err) != 0);
        CHECK(sb == NULL && strstr(err, "not a regular file"));
    }
    unlink(fifo);
}

int main(void)
{
    if (!t_tmpdir(g_dir, sizeof g_dir, "test_snapfile"))
        return 1;
    RUN(test_roundtrip_binary);
    RUN(test_roundtrip_memory);
    RUN(test_sregs);
    RUN(test_load_does_not_read_blob);
    RUN(test_two_loads_share_pages);
    RUN(test_families);
    RUN(test_every_metadata_byte);
    RUN(test_every_header_field_forged);
    RUN(test_truncation);
    RUN(test_overlap_and_eof);
    RUN(test_verify_flipped_bits);
    RUN(test_atomic_save);
    RUN(test_inspect);
    RUN(test_special_files);
    RUN(test_lineage_roundtrip);
    RUN(test_version3_loads);
    RUN(test_lineage_hostile);
    rm_tree(g_dir);
    T_EXIT();
}

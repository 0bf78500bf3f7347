/* libFuzzer target: the snapshot engine over guest memory the guest controls
 * completely. The input becomes the snapshot region and the start of scratch
 * (where the page tables live); its first bytes choose the architecture and
 * up to four roots. Compaction must never crash or read outside that memory;
 * a snapshot it produces must restore, and compacting the restored guest
 * again, with the snapshot as its parent, must never grow it, and must keep
 * every page where it was when it is as large (stable compaction). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "snapshot.h"

static sl_layout layouts[3];

static const sl_layout *layout_for(unsigned arch)
{
    sl_layout *l = &layouts[arch];
    if (!l->arch) {
        sl_config cfg = {.input_size = 4096, .output_size = 4096, .stack_size = 16384, .scratch_size = 256 << 10};
        sl_errbuf e;
        if (sl_layout_config(l, arch, &cfg, &e))
            abort();
    }
    return l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    unsigned arch = data[0] & 1 ? SL_ARCH_I686 : SL_ARCH_AMD64;
    unsigned n_roots = 1 + (data[1] & 3);
    const sl_layout *l = layout_for(arch);
    const uint8_t *hdr = data;
    data += 8;
    size -= 8;

    /* Up to 16 snapshot pages from the input; the rest fills scratch tables. */
    uint64_t snap_pages = size / SL_PAGE_SIZE < 16 ? size / SL_PAGE_SIZE : 16;
    uint64_t snap_size = snap_pages * SL_PAGE_SIZE;
    uint8_t *snap = malloc(snap_size ? snap_size : 1);
    uint8_t *scratch = calloc(1, l->scratch_size);
    if (!snap || !scratch)
        abort();
    memcpy(snap, data, snap_size);
    size_t rest = size - snap_size, room = l->exc_stack_gpa - l->pt_gpa;
    memcpy(scratch + (l->pt_gpa - l->scratch_gpa), data + snap_size, rest < room ? rest : room);

    /* Roots: table pages in scratch, or (for variety) snapshot pages. */
    uint64_t roots[4];
    for (unsigned i = 0; i < n_roots; i++)
        roots[i] = (hdr[2 + i] & 0x80) && snap_pages ? SL_BASE_ADDRESS + (hdr[2 + i] % snap_pages) * SL_PAGE_SIZE
                                                     : l->pt_gpa + (hdr[2 + i] & 0x3f) * SL_PAGE_SIZE;

    sl_guest_state st = {.layout = l, .snap_mem = snap, .snap_size = snap_size, .scratch = scratch,
                         .roots = roots, .n_roots = n_roots, .cur_root = 0, .next_kind = SL_NEXT_CALL,
                         .next_addr = 0x5000, .family = 1};
    sl_snapshot *s = NULL, *s2 = NULL;
    sl_errbuf e;
    if (sl_snapshot_from_memory(&s, &st, &e) == 0) {
        sl_mem *m;
        if (sl_mem_create(&m, s, &e) || sl_mem_restore(m, s, &e))
            abort(); /* a snapshot the engine made must restore */
        sl_guest_state again;
        sl_mem_guest_state(m, &again);
        uint64_t again_roots[SL_BK_MAX_ROOTS];
        for (unsigned i = 0; i < sl_snapshot_n_roots(s); i++)
            again_roots[i] = sl_snapshot_root(s, i);
        again.roots = again_roots;
        again.n_roots = sl_snapshot_n_roots(s);
        again.cur_root = sl_snapshot_cur_root(s);
        again.next_kind = SL_NEXT_CALL;
        again.next_addr = 0x5000;
        again.parent = sl_snapshot_hash(s);
        if (sl_snapshot_from_memory(&s2, &again, &e) == 0) {
            uint64_t pages = sl_snapshot_memory_size(s2) / SL_PAGE_SIZE;
            if (sl_snapshot_memory_size(s2) > sl_snapshot_memory_size(s))
                abort(); /* compacting a compacted guest never grows it */
            if (sl_snapshot_page_stats(s2)->pages_kept > pages)
                abort();
            if (sl_snapshot_memory_size(s2) == sl_snapshot_memory_size(s) &&
                sl_snapshot_page_stats(s2)->pages_kept != pages)
                abort(); /* every page of a compacted guest is its parent's, and stays */
            sl_snapshot_free(s2);
        }
        sl_mem_free(m);
        sl_snapshot_free(s);
    }
    free(snap);
    free(scratch);
    return 0;
}

/* A sandbox's snapshots and restores: what the guest holds between calls
 * becomes an immutable snapshot (sl_snapshot_from_memory compacts it), and
 * a restore maps a snapshot read-only, resets only what the guest dirtied,
 * and puts the vCPU back in the snapshot's state. */
#include <string.h>

#include "bookkeeping.h"
#include "sandbox.h"
#include "snapfile.h"
#include "snapinc.h"

static int map_snapshot(sl_sandbox *sb, sl_snapshot *snap)
{
    if (sb->snap == snap)
        return 0;
    /* The cast drops const for the memslot's address only: the slot is
     * read-only, so neither the guest nor KVM writes through it. */
    return sl_vcpu_map(sb->vcpu, SLOT_SNAPSHOT, SL_BASE_ADDRESS, (void *)sl_snapshot_visible(snap),
                       sl_snapshot_memory_size(snap), SL_VMEM_READONLY, &sb->err);
}

/* A fresh getrandom key for the guest kernel after every restore:
 * BLAKE3(host key || restore number), so that sandboxes restored from one
 * snapshot, and one sandbox restored twice, never share a stream. */
static void reseed(sl_sandbox *sb)
{
    uint8_t seed[SL_HASH_LEN];
    sl_hasher *h = sl_hasher_new();
    if (h) {
        uint64_t n = sb->rng_restores++;
        sl_hasher_update(h, sb->rng_key, sizeof sb->rng_key);
        sl_hasher_update(h, &n, sizeof n);
        sl_hasher_final(h, seed);
    } else {
        memcpy(seed, sb->rng_key, sizeof seed); /* out of memory: still unpredictable */
        sb->rng_key[0]++;
    }
    sl_bk_set_rng_seed(sb->mem, seed);
}

/* The vCPU in the snapshot's state: its saved special registers, or the
 * reset state for a snapshot made from a binary. */
static int reset_vcpu(sl_sandbox *sb, const sl_snapshot *snap)
{
    sl_sregs_blob blob, *saved = NULL;
    uint32_t len;
    const uint8_t *state = sl_snapshot_cpu_state(snap, &len);
    if (len) {
        memset(&blob, 0, sizeof blob);
        memcpy(blob.bytes, state, len < sizeof blob.bytes ? len : sizeof blob.bytes);
        saved = &blob;
    }
    return sl_vcpu_reset(sb->vcpu, sb->mem->root, saved, &sb->err);
}

/* Maps snap and restores memory: SL_ECHANGED for a loaded file that
 * changed; any other failure poisons. */
static int restore_memory(sl_sandbox *sb, sl_snapshot *snap)
{
    int rc;
    /* A loaded file that changed is refused before anything is touched. */
    if ((rc = sl_snapfile_check(snap, "at a restore to it", &sb->err)))
        return sl_sb_file_changed(sb, snap, rc);
    /* What the guest wrote since the last restore, so that only that is reset. */
    if ((rc = sl_vcpu_dirty_log(sb->vcpu, SLOT_SCRATCH, sb->dirty_tmp, &sb->err)))
        return sl_sb_poison(sb, rc);
    sl_mem_merge_dirty(sb->mem, sb->dirty_tmp);
    if ((rc = map_snapshot(sb, snap)))
        return sl_sb_poison(sb, rc);
    /* The sandbox runs on what its snapshot slot maps, even if the rest of
     * the restore fails (a later restore to its old snapshot must map that
     * again). */
    if (sb->snap != snap) {
        sl_snapshot_ref(snap);
        sl_snapshot_free(sb->snap);
        sb->snap = snap;
        sb->snap_from_elf = false; /* the caller holds snap: it is the next snapshots' parent */
    }
    if ((rc = sl_mem_restore(sb->mem, snap, &sb->err))) {
        /* Its old snapshot may be gone with the reference dropped above:
         * nothing reads through mem->snap before a restore succeeds. */
        sb->mem->snap = NULL;
        return rc == SL_ECHANGED ? sl_sb_file_changed(sb, snap, rc) : sl_sb_poison(sb, rc);
    }
    return 0;
}

int sl_sb_restore_raw(sl_sandbox *sb, sl_snapshot *snap)
{
    int rc;
    if ((rc = sl_family_check(snap, sb->mem->family, sb->arch, &sb->err)))
        return rc;
    if ((rc = restore_memory(sb, snap)))
        return rc;
    if ((rc = sl_vcpu_tables_changed(sb->vcpu, sb->mem->last_tables_copied > 0, &sb->err)) ||
        (rc = reset_vcpu(sb, snap)))
        return sl_sb_poison(sb, rc);
    sl_vcpu_clear_cancel(sb->vcpu);
    reseed(sb);
    sl_bk_set_host_pages(sb->mem, sl_vcpu_is_pvm(sb->vcpu));
    sl_vcpu_get_stats(sb->vcpu, &sb->stats_base);
    sb->generation = sl_snapshot_generation(snap);
    if (sl_snapshot_next_kind(snap) == SL_NEXT_CALL) {
        sb->dispatch = sl_snapshot_next_addr(snap);
        sb->stack_top = sl_snapshot_stack_top(snap);
        sb->status = SL_STATUS_READY;
    } else {
        sb->status = SL_STATUS_NEW;
    }
    return 0;
}

/* The roots the snapshot records: the guest's list, which must include the
 * space it runs in (added when missing); *cur_idx is that space. */
static int snapshot_roots(sl_sandbox *sb, uint64_t roots[SL_BK_MAX_ROOTS], unsigned *n_out, unsigned *cur_idx)
{
    uint64_t cur;
    unsigned n = sl_bk_roots(sb->mem, roots, &cur);
    bool found = false;
    *cur_idx = 0;
    for (unsigned i = 0; i < n && !found; i++)
        if (roots[i] == (cur & SL_PAGE_MASK)) {
            *cur_idx = i;
            found = true;
        }
    if (!found) {
        if (n == SL_BK_MAX_ROOTS)
            return sl_err(&sb->err, SL_EPAGETABLE, "guest lists %u address spaces, none of them current",
                          SL_BK_MAX_ROOTS);
        *cur_idx = n;
        roots[n++] = (cur ? cur : sb->mem->root) & SL_PAGE_MASK;
    }
    *n_out = n;
    return 0;
}

void sl_sb_set_full_takes(sl_sandbox *sb, bool full)
{
    sb->full_takes = full;
}

/* Incrementally when the guest still runs on the snapshot it was restored
 * to and snapinc.c can show what compaction would make of it (the same
 * result, in time that follows what changed), else by compacting. */
static int take(sl_sandbox *sb, const sl_guest_state *st, sl_snapshot **out)
{
    if (!sb->full_takes && st->parent) {
        int rc = sl_vcpu_dirty_log(sb->vcpu, SLOT_SCRATCH, sb->dirty_tmp, &sb->err);
        if (rc)
            return rc;
        sl_mem_merge_dirty(sb->mem, sb->dirty_tmp);
        rc = sl_snapinc_take(out, st, sb->snap, &sb->mem->dirty_set, &sb->err);
        if (rc != SL_INC_DECLINED)
            return rc;
    }
    return sl_snapshot_from_memory(out, st, &sb->err);
}

int sl_sandbox_snapshot(sl_sandbox *sb, sl_snapshot **out)
{
    *out = NULL;
    if (sb->status != SL_STATUS_READY)
        return sl_err(&sb->err, SL_ESTATE, "snapshots are taken between calls of a ready sandbox");
    uint64_t roots[SL_BK_MAX_ROOTS];
    unsigned n = 0, cur_idx = 0;
    int rc = snapshot_roots(sb, roots, &n, &cur_idx);
    if (rc)
        return rc;
    sl_sregs_blob blob;
    if ((rc = sl_snapfile_check(sb->snap, "before a snapshot of a sandbox running on it", &sb->err)))
        return sl_sb_file_changed(sb, sb->snap, rc);
    if ((rc = sl_vcpu_get_sregs(sb->vcpu, &blob, &sb->err)))
        return rc;
    sl_guest_state st;
    sl_mem_guest_state(sb->mem, &st);
    st.roots = roots;
    st.n_roots = n;
    st.cur_root = cur_idx;
    st.stack_top = sb->stack_top;
    st.next_kind = SL_NEXT_CALL;
    st.next_addr = sb->dispatch;
    st.generation = sb->generation + 1;
    st.parent = sb->snap_from_elf ? NULL : sl_snapshot_hash(sb->snap);
    st.sregs = blob.bytes;
    st.sregs_len = (uint32_t)sl_sregs_blob_len(&blob);
    rc = take(sb, &st, out);
    /* Compaction copies the snapshot's pages: from a file, they must still
     * be the file's (a lost page was read as zeros). */
    int changed = sl_snapfile_check(sb->snap, "while a snapshot of a sandbox running on it was taken", &sb->err);
    if (changed) {
        if (!rc)
            sl_snapshot_free(*out);
        *out = NULL;
        return sl_sb_file_changed(sb, sb->snap, changed);
    }
    if (rc)
        return rc;
    sl_sb_table_is_for(sb, sl_snapshot_hash(*out)); /* the table describes this snapshot's guest too */
    sb->generation = st.generation;
    sl_bk_set_generation(sb->mem, sb->generation);
    return 0;
}

int sl_sandbox_restore(sl_sandbox *sb, sl_snapshot *snap)
{
    if (sb->in_call)
        return sl_err(&sb->err, SL_ESTATE, "cannot restore during a call");
    int rc = sl_sb_restore_raw(sb, snap);
    if (rc)
        return rc;
    if (sb->status == SL_STATUS_NEW) {
        sb->sig_hash_set = false;
        return sl_sandbox_init(sb);
    }
    /* Signatures come from the guest: a snapshot of another program of the
     * same family brings its own, so a restore to a snapshot the table was
     * not read for asks again (one call; none in the usual "restore the same
     * snapshot after every call"). */
    if (sb->sig_hash_set && memcmp(sb->sig_hash, sl_snapshot_hash(snap), SL_HASH_LEN) == 0)
        return 0;
    /* A kill landing during that call is one that came before the restore
     * ended, and a restore discards those: restore again and ask again (a
     * few times; a caller that keeps killing gets SL_ECANCELLED). */
    for (int tries = 0; (rc = sl_sb_load_signatures(sb)) == SL_ECANCELLED && tries < 3; tries++)
        if ((rc = sl_sb_restore_raw(sb, snap)))
            return rc;
    if (rc)
        return rc;
    sl_sb_table_is_for(sb, sl_snapshot_hash(snap));
    return 0;
}

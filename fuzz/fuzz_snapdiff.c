/* libFuzzer target for sl_snapshot_diff: the input holds two whole snapshot
 * files, A and B, each put in a memfd and loaded as sl_snapshot_load would
 * (what does not load is done with). Then A is diffed with B, B with A, and
 * A with A loaded a second time. Every diff must end (the walk is bounded),
 * read only inside the files (ASan), and keep the promises of sandlet.h:
 * ranges in order of space and address, page-aligned, never overlapping,
 * merged as far as kind and permissions allow, with the permissions their
 * kind implies; B -> A is the mirror of A -> B; A has no difference with
 * itself.
 *
 * Input: [0] mode (bit 0: recompute A's header checksum, bit 1: B's, so
 * that mutated fields get past it); [1..4] A's length, little-endian u32;
 * A's bytes, then B's to the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "snapfile.h"

#define FUZZ_MAX_FILE (4u << 20)
#define MAX_RANGES 4096u /* kept for the mirror check; more are only checked in passing */

typedef struct seen {
    sl_diff_range r[MAX_RANGES];
    size_t n;
    uint64_t total;
    bool have_last;
    sl_diff_range last;
} seen;

static const unsigned known_perms = SL_PERM_READ | SL_PERM_WRITE | SL_PERM_EXEC | SL_PERM_USER | SL_PERM_COW;

static void check_perm(unsigned p, bool present)
{
    if (!present) {
        FUZZ_ASSERT(p == 0);
        return;
    }
    FUZZ_ASSERT((p & SL_PERM_READ) && !(p & ~known_perms));
    FUZZ_ASSERT(!((p & SL_PERM_COW) && (p & SL_PERM_WRITE)));
}

static int on_range(void *user, const sl_diff_range *r)
{
    seen *s = user;
    FUZZ_ASSERT(r->kind >= SL_DIFF_ADDED && r->kind <= SL_DIFF_PERM);
    FUZZ_ASSERT(r->size && r->size % 4096 == 0 && r->start % 4096 == 0);
    FUZZ_ASSERT(r->start + r->size == 0 || r->start + r->size > r->start); /* ends at 2^64 at most */
    check_perm(r->perm_a, r->kind != SL_DIFF_ADDED);
    check_perm(r->perm_b, r->kind != SL_DIFF_REMOVED);
    if (r->kind == SL_DIFF_PERM)
        FUZZ_ASSERT(r->perm_a != r->perm_b);
    if (s->have_last) {
        const sl_diff_range *p = &s->last;
        uint64_t end = p->start + p->size;
        FUZZ_ASSERT(r->space >= p->space);
        if (r->space == p->space) {
            FUZZ_ASSERT(end != 0 && r->start >= end);
            FUZZ_ASSERT(!(r->start == end && r->kind == p->kind && r->perm_a == p->perm_a && r->perm_b == p->perm_b));
        }
    }
    s->last = *r;
    s->have_last = true;
    if (s->n < MAX_RANGES)
        s->r[s->n] = *r;
    s->n++;
    s->total++;
    return 0;
}

static int mirror(int kind)
{
    return kind == SL_DIFF_ADDED ? SL_DIFF_REMOVED : kind == SL_DIFF_REMOVED ? SL_DIFF_ADDED : kind;
}

/* A file image in a memfd of its own, loaded; NULL when it does not load. */
static sl_snapshot *load(int *fd, const uint8_t *bytes, size_t len, bool reseal)
{
    if (*fd < 0 && (*fd = memfd_create("fuzz.snap", MFD_CLOEXEC)) < 0)
        abort();
    uint8_t *file = malloc(len ? len : 1);
    if (!file)
        return NULL;
    memcpy(file, bytes, len);
    if (reseal)
        sl_snapfile_reseal(file, len);
    if (ftruncate(*fd, 0) || (len && pwrite(*fd, file, len, 0) != (ssize_t)len))
        abort();
    free(file);
    sl_errbuf e;
    sl_snapshot *s = NULL;
    if (sl_snapfile_load_fd(&s, *fd, NULL, &e) != 0)
        return NULL;
    return s;
}

static int diff(const sl_snapshot *a, const sl_snapshot *b, seen *s)
{
    memset(s, 0, sizeof *s);
    char err[256] = "";
    int rc = sl_snapshot_diff(a, b, on_range, s, err, sizeof err);
    FUZZ_ASSERT(rc <= 0);
    FUZZ_ASSERT(rc == 0 || err[0]); /* a failure says why */
    FUZZ_ASSERT(rc == 0 || rc == SL_EPAGETABLE || rc == SL_ERANGE || rc == SL_ENOMEM);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fds[3] = {-1, -1, -1};
    static seen ab, ba;
    if (size < 5)
        return 0;
    uint32_t alen = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
    size_t rest = size - 5;
    if (alen > rest || alen > FUZZ_MAX_FILE || rest - alen > FUZZ_MAX_FILE)
        return 0;
    sl_snapshot *a = load(&fds[0], data + 5, alen, data[0] & 1);
    sl_snapshot *b = load(&fds[1], data + 5 + alen, rest - alen, data[0] & 2);
    sl_snapshot *a2 = a ? load(&fds[2], data + 5, alen, data[0] & 1) : NULL;
    if (a && b) {
        int r1 = diff(a, b, &ab), r2 = diff(b, a, &ba);
        FUZZ_ASSERT((r1 == 0) == (r2 == 0) || r1 == SL_ENOMEM || r2 == SL_ENOMEM);
        if (r1 == 0 && r2 == 0) {
            FUZZ_ASSERT(ab.total == ba.total);
            for (size_t i = 0; i < ab.n && i < MAX_RANGES; i++) {
                const sl_diff_range *x = &ab.r[i], *y = &ba.r[i];
                FUZZ_ASSERT(x->space == y->space && x->start == y->start && x->size == y->size &&
                            y->kind == mirror(x->kind) && x->perm_a == y->perm_b && x->perm_b == y->perm_a);
            }
        }
    }
    if (a && a2 && diff(a, a2, &ab) == 0)
        FUZZ_ASSERT(ab.total == 0);
    sl_snapshot_free(a);
    sl_snapshot_free(a2);
    sl_snapshot_free(b);
    return 0;
}

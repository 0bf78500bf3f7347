/* sl_snapshot_diff on snapshots of real guests:
 *   - demo (and demo32): a snapshot after init, then after Counter: the one
 *     page that differs is the counter's (its 8 bytes go from 0 to 1, then
 *     to 2); a snapshot taken again after a restore has no difference, nor
 *     does a snapshot against itself or against its saved and loaded file;
 *   - two different guests (demo, faulty): the diff one way is the mirror
 *     of the diff the other way;
 *   - multispace (four spaces sharing every table but one root slot): after
 *     Spaces(), which counts a visit in each space's private page, each
 *     space has that page changed and otherwise the same ranges as space 0.
 * White-box only to read a changed page's bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt.h"
#include "sandlet.h"
#include "snapshot.h"
#include "t.h"
#include "../common/e2e.h"
#include "snapshot_impl.h"

#define PRIVATE_GVA 0x0000008000000000ull /* guests/multispace.c */

typedef struct ranges {
    sl_diff_range *r;
    size_t n, cap;
} ranges;

static int gather(void *user, const sl_diff_range *r)
{
    ranges *v = user;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        if (!(v->r = realloc(v->r, v->cap * sizeof *v->r)))
            abort();
    }
    v->r[v->n++] = *r;
    return 0;
}

static int diff(const sl_snapshot *a, const sl_snapshot *b, ranges *v)
{
    char err[256] = "";
    v->n = 0;
    int rc = sl_snapshot_diff(a, b, gather, v, err, sizeof err);
    if (rc)
        printf("  diff: %s\n", err);
    return rc;
}

static sl_sandbox *open_guest(const char *name)
{
    sl_sandbox *sb = NULL;
    char err[256] = "";
    if (sl_sandbox_new_from_file(&sb, guest_path(name), NULL, err, sizeof err)) {
        printf("  %s: %s\n", name, err);
        return NULL;
    }
    if (sl_sandbox_init(sb)) {
        printf("  init %s: %s\n", name, sl_sandbox_errmsg(sb));
        sl_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

static sl_snapshot *take(sl_sandbox *sb)
{
    sl_snapshot *s = NULL;
    if (sl_sandbox_snapshot(sb, &s))
        printf("  snapshot: %s\n", sl_sandbox_errmsg(sb));
    return s;
}

static bool call0(sl_sandbox *sb, const char *fn)
{
    sl_value r;
    int rc = sl_sandbox_call(sb, fn, NULL, 0, &r);
    if (rc)
        printf("  %s: %s\n", fn, sl_sandbox_errmsg(sb));
    return rc == 0;
}

/* Tables at pt_gpa (blob offset visible_size + ...), pages at 0x4000. */
static void *snap_page(void *ctx, uint64_t gpa)
{
    const sl_snapshot *s = ctx;
    if (gpa >= s->layout.pt_gpa && gpa - s->layout.pt_gpa < s->pt_size)
        return s->mem + s->visible_size + (gpa - s->layout.pt_gpa);
    if (gpa >= SL_BASE_ADDRESS && gpa - SL_BASE_ADDRESS < s->visible_size)
        return s->mem + (gpa - SL_BASE_ADDRESS);
    return NULL;
}

/* The page at gva in space 0 of s, or NULL. */
static const uint8_t *page_at(const sl_snapshot *s, uint64_t gva)
{
    sl_pt_mem m = {.ctx = (void *)s, .page = snap_page};
    sl_mapping map;
    if (!sl_pt_lookup(s->arch, &m, s->roots[0], gva, &map, NULL))
        return NULL;
    return snap_page((void *)s, map.gpa);
}

/* The one 8-byte little-endian word in which the page at gva differs
 * between a and b goes from `from` to `to`, and nothing else differs. */
static bool only_counter_changed(const sl_snapshot *a, const sl_snapshot *b, uint64_t gva, int64_t from, int64_t to)
{
    const uint8_t *pa = page_at(a, gva), *pb = page_at(b, gva);
    if (!pa || !pb)
        return false;
    int words = 0;
    bool ok = true;
    for (unsigned off = 0; off < SL_PAGE_SIZE; off += 8) {
        int64_t wa, wb;
        memcpy(&wa, pa + off, 8);
        memcpy(&wb, pb + off, 8);
        if (wa != wb) {
            words++;
            ok = ok && wa == from && wb == to;
        }
    }
    if (words != 1 || !ok)
        printf("  page 0x%llx: %d words differ\n", (unsigned long long)gva, words);
    return words == 1 && ok;
}

static void demo(const char *name)
{
    sl_sandbox *sb = open_guest(name);
    REQUIRE(sb);
    sl_snapshot *a = take(sb), *b = NULL, *c = NULL, *d = NULL, *la = NULL;
    ranges v = {0};
    if (!a || !call0(sb, "Counter") || !(b = take(sb)) || !call0(sb, "Counter") || !(c = take(sb)) ||
        sl_sandbox_restore(sb, a) || !(d = take(sb)))
        goto out;
    CHECK_EQ(diff(a, a, &v), 0);
    CHECK_EQ(v.n, 0);
    CHECK_EQ(diff(a, d, &v), 0); /* restored, taken again: the same memory */
    CHECK_EQ(v.n, 0);
    CHECK_EQ(diff(a, b, &v), 0);
    /* Copy-on-write data of the program; i686 pages are all executable. */
    unsigned data = SL_PERM_READ | SL_PERM_COW | SL_PERM_USER | (a->arch == SL_ARCH_I686 ? SL_PERM_EXEC : 0);
    if (v.n != 1 || v.r[0].kind != SL_DIFF_CHANGED || v.r[0].size != SL_PAGE_SIZE || v.r[0].space != 0 ||
        v.r[0].perm_a != data || v.r[0].perm_b != data) {
        printf("  a -> b: %zu ranges, expected the counter's page\n", v.n);
        t_failed_now = 1;
        goto out;
    }
    uint64_t counter_page = v.r[0].start;
    CHECK(only_counter_changed(a, b, counter_page, 0, 1));
    CHECK_EQ(diff(b, c, &v), 0);
    CHECK(v.n == 1 && v.r[0].start == counter_page && v.r[0].size == SL_PAGE_SIZE);
    CHECK(only_counter_changed(b, c, counter_page, 1, 2));
    CHECK_EQ(diff(c, a, &v), 0);
    CHECK(v.n == 1 && v.r[0].start == counter_page && v.r[0].kind == SL_DIFF_CHANGED);
    /* The same snapshot from its file: other memory, the same contents. */
    char path[] = "/tmp/sl_snapdiff_XXXXXX", err[256];
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    CHECK(sl_snapshot_save(b, path, err, sizeof err) == 0 && sl_snapshot_load(&la, path, err, sizeof err) == 0);
    unlink(path);
    if (la) {
        CHECK_EQ(diff(b, la, &v), 0);
        CHECK_EQ(v.n, 0);
        CHECK_EQ(diff(la, a, &v), 0);
        CHECK(v.n == 1 && v.r[0].start == counter_page);
    }
out:
    free(v.r);
    sl_snapshot_free(la);
    sl_snapshot_free(d);
    sl_snapshot_free(c);
    sl_snapshot_free(b);
    sl_snapshot_free(a);
    sl_sandbox_free(sb);
}

static void test_demo(void) { demo("demo"); }
static void test_demo32(void) { demo("demo32"); }

static int mirror(int kind)
{
    return kind == SL_DIFF_ADDED ? SL_DIFF_REMOVED : kind == SL_DIFF_REMOVED ? SL_DIFF_ADDED : kind;
}

/* Two different programs: many differences, and B -> A mirrors A -> B. */
static void test_different_guests(void)
{
    sl_sandbox *sa = open_guest("demo"), *sb = open_guest("faulty");
    sl_snapshot *a = sa ? take(sa) : NULL, *b = sb ? take(sb) : NULL;
    ranges ab = {0}, ba = {0};
    if (a && b) {
        CHECK_EQ(diff(a, b, &ab), 0);
        CHECK_EQ(diff(b, a, &ba), 0);
        CHECK(ab.n > 0);
        CHECK_EQ(ab.n, ba.n);
        for (size_t i = 0; i < ab.n && i < ba.n; i++) {
            const sl_diff_range *x = &ab.r[i], *y = &ba.r[i];
            CHECK(x->space == y->space && x->start == y->start && x->size == y->size && y->kind == mirror(x->kind) &&
                  x->perm_a == y->perm_b && x->perm_b == y->perm_a);
        }
    } else {
        t_failed_now = 1;
    }
    free(ab.r);
    free(ba.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    sl_sandbox_free(sa);
    sl_sandbox_free(sb);
}

/* Four spaces that share all but their private page: the same ranges in
 * each, the private page among them. */
static void test_multispace(void)
{
    sl_sandbox *sb = open_guest("multispace");
    REQUIRE(sb);
    sl_snapshot *a = take(sb), *b = NULL;
    ranges v = {0};
    if (a && call0(sb, "Spaces") && (b = take(sb))) {
        CHECK_EQ(diff(a, b, &v), 0);
        size_t per[4] = {0}, start[4] = {0};
        int priv[4] = {0};
        for (size_t i = 0; i < v.n; i++) {
            const sl_diff_range *r = &v.r[i];
            REQUIRE(r->space < 4);
            if (!per[r->space]++)
                start[r->space] = i;
            priv[r->space] += r->start == PRIVATE_GVA && r->size == SL_PAGE_SIZE && r->kind == SL_DIFF_CHANGED;
        }
        for (unsigned sp = 0; sp < 4; sp++) {
            CHECK_EQ(priv[sp], 1);
            CHECK_EQ(per[sp], per[0]);
            for (size_t k = 0; k < per[0] && per[sp] == per[0]; k++) {
                const sl_diff_range *x = &v.r[start[0] + k], *y = &v.r[start[sp] + k];
                CHECK(x->start == y->start && x->size == y->size && x->kind == y->kind && x->perm_a == y->perm_a &&
                      x->perm_b == y->perm_b);
            }
        }
    } else {
        t_failed_now = 1;
    }
    free(v.r);
    sl_snapshot_free(a);
    sl_snapshot_free(b);
    sl_sandbox_free(sb);
}

int main(void)
{
    RUN_ARCH(T_AMD64, test_demo);
    RUN_ARCH(T_I686, test_demo32);
    RUN_ARCH(T_AMD64, test_different_guests);
    RUN_ARCH(T_AMD64, test_multispace);
    T_EXIT();
}

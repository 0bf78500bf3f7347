/* Several address spaces (x86-64). At init it creates three more spaces
 * (copies of root 0, so they share every table below the root) and maps one
 * private page at the same address in each of the four, with different
 * content. Spaces() switches through them, checks that each sees its own
 * page, counts the visit in the page, and returns the number of spaces.
 * Visits(i32 space) returns that space's visit count. */
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>

#define NSPACES 4
#define PRIVATE_GVA 0x0000008000000000ull /* root slot 1: empty in the host's tables */
#define MAGIC 0x5350414345000000ull       /* "SPACE" */

typedef struct page {
    uint64_t magic; /* MAGIC | space */
    uint64_t visits;
    char text[32];
} page;

static page *const priv = (page *)(uintptr_t)PRIVATE_GVA;

static int spaces(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    unsigned n = sl_space_count(), back = sl_space_current();
    if (n != NSPACES)
        return sl_fail(ret, SL_ABI_EABORT, "Spaces: wrong number of spaces");
    for (unsigned i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "private page of space %u", i);
        if (sl_space_switch(i) != 0 || priv->magic != (MAGIC | i) || strcmp(priv->text, want) != 0) {
            sl_space_switch(back);
            return sl_fail(ret, SL_ABI_EABORT, "Spaces: a space does not see its own page");
        }
        priv->visits++;
    }
    sl_space_switch(back);
    ret->v.i32 = (int32_t)n;
    return SL_ABI_OK;
}

static int visits(const sl_gvalue *a, sl_gvalue *ret)
{
    int32_t i = a[0].v.i32;
    unsigned back = sl_space_current();
    if (i < 0 || (unsigned)i >= sl_space_count() || sl_space_switch((unsigned)i) != 0)
        return sl_fail(ret, SL_ABI_EABORT, "Visits: no such space");
    ret->v.i64 = (int64_t)priv->visits;
    sl_space_switch(back);
    return SL_ABI_OK;
}

void sandlet_main(void)
{
    for (unsigned i = 1; i < NSPACES; i++)
        if (sl_space_create() != (int)i)
            sl_abort(1, "multispace: sl_space_create failed");
    for (unsigned i = 0; i < NSPACES; i++) {
        if (sl_space_map_private(i, PRIVATE_GVA) != 0 || sl_space_switch(i) != 0)
            sl_abort(1, "multispace: cannot map the private page");
        priv->magic = MAGIC | i;
        priv->visits = 0;
        snprintf(priv->text, sizeof priv->text, "private page of space %u", i);
    }
    sl_space_switch(0);
    static const uint8_t i1[] = {SL_T_I32};
    if (sl_register("Spaces", SL_T_I32, 0, NULL, spaces) || sl_register("Visits", SL_T_I64, 1, i1, visits))
        sl_abort(1, "multispace: registration failed");
}

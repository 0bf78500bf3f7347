/* The walk's table GPA -> first owner record (pt_owners.h). */
#include "pt_owners.h"

#include <stdlib.h>

void sl_pt_owners_init(sl_pt_owners *t, size_t limit)
{
    sl_u64map_init(&t->index);
    t->owners = NULL;
    t->n = t->cap = 0;
    t->limit = limit;
}

void sl_pt_owners_free(sl_pt_owners *t)
{
    sl_u64map_free(&t->index);
    free(t->owners);
    sl_pt_owners_init(t, t->limit);
}

const sl_pt_owner *sl_pt_owners_get(const sl_pt_owners *t, uint64_t gpa)
{
    const uint64_t *i = sl_u64map_get(&t->index, gpa);
    return i ? &t->owners[*i] : NULL;
}

bool sl_pt_owners_add(sl_pt_owners *t, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    if (t->limit && t->n >= t->limit)
        return false;
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        sl_pt_owner *o = realloc(t->owners, ncap * sizeof *o);
        if (!o)
            return false;
        t->owners = o;
        t->cap = ncap;
    }
    if (!sl_u64map_put(&t->index, gpa, t->n))
        return false;
    t->owners[t->n++] = (sl_pt_owner){.va = va, .root = root, .depth = depth};
    return true;
}

static bool seen_lookup(void *ctx, uint64_t gpa, unsigned *root, uint64_t *va, unsigned *depth)
{
    const sl_pt_owner *o = sl_pt_owners_get(ctx, gpa);
    if (!o)
        return false;
    *root = o->root;
    *va = o->va;
    *depth = o->depth;
    return true;
}

static bool seen_record(void *ctx, uint64_t gpa, unsigned root, uint64_t va, unsigned depth)
{
    return sl_pt_owners_add(ctx, gpa, root, va, depth);
}

sl_pt_seen sl_pt_owners_seen(sl_pt_owners *t)
{
    return (sl_pt_seen){.ctx = t, .lookup = seen_lookup, .record = seen_record};
}

/* Configuration families (family.h): ids, and the registry that gives every
 * loaded file with the same layout the same id. */
#include "family.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

uint64_t sl_family_new(void)
{
    static atomic_uint_fast64_t next = 1;
    return (uint64_t)atomic_fetch_add(&next, 1);
}

/* What makes two layouts one family: sl_layout_config derives every other
 * placement from these. */
typedef struct family {
    unsigned arch;
    uint64_t sizes[6];
    uint32_t init_data_perm;
    uint64_t id;
} family;

/* Bounds the registry against a stream of hostile files with ever new
 * configurations; past it a configuration gets a family of its own. */
#define FAMILIES_MAX 4096u

static pthread_mutex_t families_lock = PTHREAD_MUTEX_INITIALIZER;
static family *families;
static size_t n_families, cap_families;

static const family *find(const family *want)
{
    for (size_t i = 0; i < n_families; i++) {
        const family *f = &families[i];
        if (f->arch == want->arch && f->init_data_perm == want->init_data_perm &&
            memcmp(f->sizes, want->sizes, sizeof want->sizes) == 0)
            return f;
    }
    return NULL;
}

/* Records `want` with a fresh id (the caller holds families_lock). */
static int add(family *want, sl_errbuf *e)
{
    if (n_families == FAMILIES_MAX) {
        want->id = sl_family_new();
        return 0;
    }
    if (n_families == cap_families) {
        size_t ncap = cap_families ? cap_families * 2 : 8;
        family *nf = realloc(families, ncap * sizeof *nf);
        if (!nf)
            return sl_err(e, SL_ENOMEM, "out of memory");
        families = nf;
        cap_families = ncap;
    }
    want->id = sl_family_new();
    families[n_families++] = *want;
    return 0;
}

int sl_family_of_layout(const sl_layout *l, uint64_t *id, sl_errbuf *e)
{
    family want = {.arch = l->arch,
                   .sizes = {l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size,
                             l->init_data_size},
                   .init_data_perm = l->init_data_perm};
    int rc = 0;
    pthread_mutex_lock(&families_lock);
    const family *f = find(&want);
    if (f)
        *id = f->id;
    else if ((rc = add(&want, e)) == 0)
        *id = want.id;
    pthread_mutex_unlock(&families_lock);
    return rc;
}

int sl_family_check(const sl_snapshot *s, uint64_t family, unsigned arch, sl_errbuf *e)
{
    if (sl_snapshot_family(s) != family)
        return sl_err(e, SL_EFAMILY, "snapshot belongs to configuration family %llu, this sandbox to family %llu",
                      (unsigned long long)sl_snapshot_family(s), (unsigned long long)family);
    if (sl_snapshot_arch(s) != arch)
        return sl_err(e, SL_EFAMILY, "snapshot is for another architecture");
    return 0;
}

/* libFuzzer target for the snapshot file loader: the input (after one mode
 * byte) is a whole file, put in a memfd and given to load, verify and inspect.
 * Mode bit 0 recomputes the header checksum first, so that mutated fields
 * reach the field-by-field validation instead of stopping at the checksum.
 * Whatever loads must satisfy the invariants restore relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapfile.h"
/* White-box: checks the fields the engine and the file codec build. */
#include "snapshot_impl.h"

#define FUZZ_MAX_FILE (4u << 20)

static void sink(void *user, const char *text)
{
    size_t *n = user;
    *n += strlen(text) + 1;
}

static void check_invariants(const sl_snapshot *s)
{
    const sl_layout *l = &s->layout;
    if (s->mem_size != s->visible_size + s->pt_size || !s->n_roots || s->n_roots > SL_BK_MAX_ROOTS ||
        s->cur_root >= s->n_roots || s->pt_size > l->exc_stack_gpa - l->pt_gpa ||
        SL_BASE_ADDRESS + s->visible_size > l->scratch_gpa || s->n_regions > SL_MAX_REGIONS ||
        s->sregs_len > SL_SREGS_MAX ||
        (s->sregs_len && (s->sregs_len < 16 || 16 + (uint64_t)(s->sregs[8] | s->sregs[9] << 8 | s->sregs[10] << 16 |
                                                             (uint32_t)s->sregs[11] << 24) != s->sregs_len)) || s->mem + s->mem_size > (const uint8_t *)s->map_base + s->map_len)
        abort();
    for (unsigned i = 0; i < s->n_roots; i++)
        if (s->roots[i] < l->pt_gpa || s->roots[i] - l->pt_gpa >= s->pt_size)
            abort();
    /* Lineage (format 4): a parent is an identity; without one, nothing kept. */
    static const uint8_t zero[SL_HASH_LEN];
    if (s->has_parent ? memcmp(s->parent, zero, SL_HASH_LEN) == 0 : s->stats.pages_kept != 0)
        abort();
    if (s->stats.pages_kept > s->visible_size / SL_PAGE_SIZE)
        abort();
    /* Touch the first and last byte of the blob: they must be mapped. */
    volatile uint8_t b = s->mem[0];
    b ^= s->mem[s->mem_size - 1];
    (void)b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (size < 1 || size - 1 > FUZZ_MAX_FILE)
        return 0;
    if (fd < 0 && (fd = memfd_create("fuzz.snap", MFD_CLOEXEC)) < 0)
        abort();
    uint8_t *file = malloc(size);
    if (!file)
        return 0;
    size_t len = size - 1;
    memcpy(file, data + 1, len);
    if (data[0] & 1)
        sl_snapfile_reseal(file, len);
    if (ftruncate(fd, 0) || (len && pwrite(fd, file, len, 0) != (ssize_t)len))
        abort();
    free(file);

    sl_errbuf e;
    e.msg[0] = 0;
    sl_snapshot *s = NULL;
    if (sl_snapfile_load_fd(&s, fd, NULL, &e) == 0) {
        check_invariants(s);
        sl_snapshot_free(s);
        size_t n = 0;
        if (sl_snapfile_inspect_fd(fd, NULL, sink, &n, &e) != 0)
            abort(); /* what loads can be inspected */
        sl_snapfile_verify_fd(fd, &e);
    } else if (s || !e.msg[0]) {
        abort(); /* a failed load returns nothing and says why */
    }
    return 0;
}

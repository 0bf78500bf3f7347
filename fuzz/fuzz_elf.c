/* libFuzzer target for the ELF loader: parse anything; whatever parses with a
 * span up to 16 MiB is loaded into an exact-size heap buffer, so ASan sees
 * any write outside the span and any read outside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sl_elf.h"

#define FUZZ_MAX_SPAN (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_elf_image img;
    sl_errbuf e;
    if (sl_elf_parse(data, size, &img, &e) != 0 || img.span > FUZZ_MAX_SPAN)
        return 0;
    if (img.span == 0 || img.n_segments == 0 || img.n_segments > SL_ELF_MAX_SEGMENTS)
        abort(); /* parse promised a usable image */
    uint8_t *dst = malloc(img.span);
    if (!dst)
        return 0;
    /* PIE: somewhere other than the link address, to exercise delta; else the only legal place. */
    uint64_t load_addr = img.pie ? 0x200000 : img.base_va;
    if (sl_elf_load(&img, data, size, dst, img.span, load_addr, &e) != 0)
        abort(); /* a parsed image must load */
    free(dst);
    return 0;
}

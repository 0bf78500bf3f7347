/* Named sl_elf.h, not elf.h: with -Isrc/host an elf.h here would shadow
 * <elf.h> from libc, whose structure definitions the loader uses. */
/* Guest ELF loader: validates a static (optionally position-independent)
 * x86-64 or i386 guest binary and copies it into guest memory, applying its
 * RELATIVE relocations. The file is hostile: every offset, size and count is
 * checked before use and a malformed file is an error, never a crash. */
#ifndef SL_ELF_H
#define SL_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SL_ELF_MAX_SEGMENTS 16  /* PT_LOAD segments */
#define SL_ELF_MAX_PHDRS 64     /* program headers of any type */
#define SL_ELF_MAX_SPAN (1ull << 30)

typedef struct sl_elf_segment {
    uint64_t vaddr, memsz, filesz, offset;
    bool r, w, x;
} sl_elf_segment;

typedef struct sl_elf_image {
    unsigned arch;      /* SL_ARCH_AMD64 or SL_ARCH_I686 */
    bool pie;           /* ET_DYN */
    uint64_t base_va;   /* lowest PT_LOAD vaddr rounded down to 4 KiB */
    uint64_t span;      /* base_va .. end of the highest segment, rounded up to 4 KiB */
    uint64_t entry;     /* e_entry, unrelocated */
    /* The program headers as the program sees them (AT_PHDR, unrelocated):
     * 0 when no file-backed PT_LOAD covers them. */
    uint64_t phdr_va;
    unsigned phnum, phent;
    unsigned n_segments; /* sorted by vaddr, non-overlapping, memsz > 0 */
    sl_elf_segment seg[SL_ELF_MAX_SEGMENTS];
    bool has_version;   /* the sandlet version note was present */
    uint32_t version_major, version_minor;
    uint64_t n_relocs;  /* RELATIVE relocations that sl_elf_load applies */
    /* For sl_elf_load: file range of the relocation table (RELA on amd64,
     * REL on i686); rel_size 0 when there is none. */
    uint64_t rel_offset, rel_size;
} sl_elf_image;

/* Parses and validates buf[0..len). On success fills *img and returns 0; on
 * failure returns SL_EFORMAT (malformed), SL_ERANGE (limits exceeded),
 * SL_EUNSUPPORTED (valid but not loadable: relocation type, dynamic linking),
 * SL_EVERSION (guest built for an incompatible sandlet ABI) or SL_EINVAL,
 * with a message in *e. */
int sl_elf_parse(const uint8_t *buf, size_t len, sl_elf_image *img, sl_errbuf *e);

/* Loads the image parsed from the same buf into dst, which holds guest
 * memory [load_addr, load_addr + dst_len): dst[0] is where base_va lands.
 * Zero-fills everything between and after segments, then applies the
 * relocations with delta = load_addr - base_va. load_addr must be page
 * aligned, and equal base_va for ET_EXEC. dst_len >= img->span. */
int sl_elf_load(const sl_elf_image *img, const uint8_t *buf, size_t len, uint8_t *dst,
                size_t dst_len, uint64_t load_addr, sl_errbuf *e);

#endif

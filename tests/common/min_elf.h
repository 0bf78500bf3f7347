/* The smallest static-PIE x86-64 ELF the loader takes, for the tests and
 * benchmarks that need a guest binary but not a guest (snapshots built with
 * sl_snapshot_from_binary, then saved, loaded, compared):
 *   text  file 0..0x1000 at vaddr 0, R+X; the entry, 0x200, is a `hlt`;
 *   data  file 0x1000..0x2000 at vaddr 0x1000, R+W, `data_memsz` bytes in
 *         memory (beyond 0x1000: bss); `data_byte` at 0x1008;
 *   with `relocation`: a PT_DYNAMIC at 0x1800 whose one R_X86_64_RELATIVE
 *         relocation stores base + 0x200 at 0x1000.
 * The file is MIN_ELF_SIZE bytes; the rest of it is zero. */
#ifndef SL_TEST_MIN_ELF_H
#define SL_TEST_MIN_ELF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "le.h"

#define MIN_ELF_SIZE 0x2000u

typedef struct min_elf {
    uint64_t data_memsz;
    uint8_t data_byte;
    bool relocation;
} min_elf;

/* One program header whose file offset, vaddr and paddr are all `at`. */
static inline void min_elf_phdr(uint8_t *ph, uint32_t type, uint32_t flags, uint64_t at, uint64_t filesz,
                                uint64_t memsz, uint64_t align)
{
    sl_put32(ph, type);
    sl_put32(ph + 4, flags);
    sl_put64(ph + 8, at);
    sl_put64(ph + 16, at);
    sl_put64(ph + 24, at);
    sl_put64(ph + 32, filesz);
    sl_put64(ph + 40, memsz);
    sl_put64(ph + 48, align);
}

/* Writes the ELF into buf[0..MIN_ELF_SIZE); returns its size. */
static inline size_t min_elf64(uint8_t *buf, min_elf o)
{
    memset(buf, 0, MIN_ELF_SIZE);
    memcpy(buf, "\177ELF", 4);
    buf[4] = 2; /* ELFCLASS64 */
    buf[5] = 1; /* ELFDATA2LSB */
    buf[6] = 1; /* EV_CURRENT */
    sl_put16(buf + 16, 3);  /* ET_DYN */
    sl_put16(buf + 18, 62); /* EM_X86_64 */
    sl_put32(buf + 20, 1);
    sl_put64(buf + 24, 0x200); /* e_entry */
    sl_put64(buf + 32, 64);    /* e_phoff */
    sl_put16(buf + 52, 64);    /* e_ehsize */
    sl_put16(buf + 54, 56);    /* e_phentsize */
    sl_put16(buf + 56, o.relocation ? 3 : 2);
    min_elf_phdr(buf + 64, 1, 5, 0, 0x1000, 0x1000, 0x1000);                /* PT_LOAD, R+X */
    min_elf_phdr(buf + 64 + 56, 1, 6, 0x1000, 0x1000, o.data_memsz, 0x1000); /* PT_LOAD, R+W */
    if (o.relocation) {
        min_elf_phdr(buf + 64 + 112, 2, 6, 0x1800, 0x40, 0x40, 8); /* PT_DYNAMIC */
        uint8_t *dyn = buf + 0x1800, *rela = buf + 0x1900;
        sl_put64(dyn, 7);       /* DT_RELA */
        sl_put64(dyn + 8, 0x1900);
        sl_put64(dyn + 16, 8);  /* DT_RELASZ */
        sl_put64(dyn + 24, 24);
        sl_put64(dyn + 32, 9);  /* DT_RELAENT */
        sl_put64(dyn + 40, 24); /* then DT_NULL */
        sl_put64(rela, 0x1000); /* r_offset */
        sl_put64(rela + 8, 8);  /* R_X86_64_RELATIVE */
        sl_put64(rela + 16, 0x200);
    }
    buf[0x200] = 0xF4; /* hlt */
    buf[0x1008] = o.data_byte;
    return MIN_ELF_SIZE;
}

#endif

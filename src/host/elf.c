/* The guest ELF loader (sl_elf.h): parse and check, then load and relocate. */
#include "sl_elf.h"

#include <elf.h>
#include <string.h>

#include "abi.h"
#include "le.h"
#include "sl_layout.h"

/* ELF fields are read with memcpy into host structures, which is only right
 * on a little-endian host (all hosts with KVM for x86 guests are). */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");

#ifndef DT_RELR
#define DT_RELRSZ 35
#define DT_RELR 36
#endif

typedef unsigned long long ull;

/* A program header, widened from either class. */
typedef struct phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, filesz, memsz, align;
} phdr;

/* Parse state shared by the helpers below. */
typedef struct pctx {
    const uint8_t *buf;
    size_t len;
    bool is64;
    sl_elf_image *img;
    sl_errbuf *e;
    bool have_dynamic;
    phdr dynamic;
} pctx;

/* Half-open [off, off+size) inside [0, limit), without overflow. */
static bool range_ok(uint64_t off, uint64_t size, uint64_t limit)
{
    return off <= limit && size <= limit - off;
}

static uint64_t page_up(uint64_t v) /* caller guarantees no overflow */
{
    return (v + SL_PAGE_SIZE - 1) & SL_PAGE_MASK;
}

/* One past the highest guest address a segment may reach: the 32-bit space
 * for i386, the lower canonical half for x86-64 (the top belongs to scratch). */
static uint64_t addr_limit(unsigned arch)
{
    return arch == SL_ARCH_I686 ? (1ull << 32) : (1ull << 47);
}

/* ---- header ---- */

typedef struct ehdr {
    uint16_t type, machine, ehsize, phentsize, phnum;
    uint32_t version;
    uint64_t entry, phoff;
} ehdr;

static int check_ident(pctx *c)
{
    const uint8_t *id = c->buf;
    if (c->len < EI_NIDENT)
        return sl_err(c->e, SL_EFORMAT, "ELF: file too short (%zu bytes) for e_ident", c->len);
    if (memcmp(id, ELFMAG, SELFMAG) != 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: bad magic in e_ident (not an ELF file)");
    if (id[EI_CLASS] != ELFCLASS64 && id[EI_CLASS] != ELFCLASS32)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_ident[EI_CLASS] %u is neither ELFCLASS32 nor ELFCLASS64",
                      id[EI_CLASS]);
    if (id[EI_DATA] != ELFDATA2LSB)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_ident[EI_DATA] %u is not little-endian (ELFDATA2LSB)",
                      id[EI_DATA]);
    if (id[EI_VERSION] != EV_CURRENT)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_ident[EI_VERSION] %u is not EV_CURRENT", id[EI_VERSION]);
    if (id[EI_OSABI] != ELFOSABI_SYSV && id[EI_OSABI] != ELFOSABI_GNU)
        return sl_err(c->e, SL_EUNSUPPORTED, "ELF: e_ident[EI_OSABI] %u is not SYSV or GNU", id[EI_OSABI]);
    c->is64 = id[EI_CLASS] == ELFCLASS64;
    return 0;
}

static int read_ehdr(pctx *c, ehdr *h)
{
    if (c->is64) {
        Elf64_Ehdr r;
        if (c->len < sizeof r)
            return sl_err(c->e, SL_EFORMAT, "ELF: file too short (%zu bytes) for the ELF64 header", c->len);
        memcpy(&r, c->buf, sizeof r);
        *h = (ehdr){r.e_type, r.e_machine, r.e_ehsize, r.e_phentsize, r.e_phnum, r.e_version, r.e_entry, r.e_phoff};
    } else {
        Elf32_Ehdr r;
        if (c->len < sizeof r)
            return sl_err(c->e, SL_EFORMAT, "ELF: file too short (%zu bytes) for the ELF32 header", c->len);
        memcpy(&r, c->buf, sizeof r);
        *h = (ehdr){r.e_type, r.e_machine, r.e_ehsize, r.e_phentsize, r.e_phnum, r.e_version, r.e_entry, r.e_phoff};
    }
    return 0;
}

static int check_ehdr(pctx *c, const ehdr *h)
{
    size_t ehsize = c->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    size_t phentsize = c->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    unsigned want_machine = c->is64 ? EM_X86_64 : EM_386;

    if (h->version != EV_CURRENT)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_version %u is not EV_CURRENT", h->version);
    if (h->machine != want_machine)
        return sl_err(c->e, SL_EUNSUPPORTED, "ELF: e_machine %u not supported for %s (need %s)", h->machine,
                      c->is64 ? "ELFCLASS64" : "ELFCLASS32", c->is64 ? "EM_X86_64" : "EM_386");
    if (h->type != ET_EXEC && h->type != ET_DYN)
        return sl_err(c->e, h->type == ET_REL || h->type == ET_CORE ? SL_EUNSUPPORTED : SL_EFORMAT,
                      "ELF: e_type %u is not ET_EXEC or ET_DYN", h->type);
    if (h->ehsize != ehsize)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_ehsize %u, expected %zu", h->ehsize, ehsize);
    if (h->phentsize != phentsize)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_phentsize %u, expected %zu", h->phentsize, phentsize);
    if (h->phnum == 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: e_phnum is 0 (no program headers)");
    if (h->phnum > SL_ELF_MAX_PHDRS)
        return sl_err(c->e, SL_ERANGE, "ELF: e_phnum %u exceeds the limit of %u", h->phnum, SL_ELF_MAX_PHDRS);
    if (!range_ok(h->phoff, (uint64_t)h->phnum * phentsize, c->len))
        return sl_err(c->e, SL_EFORMAT, "ELF: program headers (e_phoff 0x%llx, e_phnum %u) extend past the end of the file (%zu bytes)",
                      (ull)h->phoff, h->phnum, c->len);
    return 0;
}

static phdr read_phdr(const pctx *c, uint64_t off)
{
    if (c->is64) {
        Elf64_Phdr r;
        memcpy(&r, c->buf + off, sizeof r);
        return (phdr){r.p_type, r.p_flags, r.p_offset, r.p_vaddr, r.p_filesz, r.p_memsz, r.p_align};
    }
    Elf32_Phdr r;
    memcpy(&r, c->buf + off, sizeof r);
    return (phdr){r.p_type, r.p_flags, r.p_offset, r.p_vaddr, r.p_filesz, r.p_memsz, r.p_align};
}

/* ---- PT_LOAD ---- */

static int add_load(pctx *c, unsigned i, const phdr *p)
{
    sl_elf_image *img = c->img;
    uint64_t limit = addr_limit(img->arch);

    if (p->filesz > p->memsz)
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_filesz 0x%llx > p_memsz 0x%llx", i,
                      (ull)p->filesz, (ull)p->memsz);
    if (!range_ok(p->offset, p->filesz, c->len))
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_offset 0x%llx + p_filesz 0x%llx past the end of the file (%zu bytes)",
                      i, (ull)p->offset, (ull)p->filesz, c->len);
    if (p->memsz > SL_ELF_MAX_SPAN)
        return sl_err(c->e, SL_ERANGE, "ELF: PT_LOAD (phdr %u): p_memsz 0x%llx exceeds the 1 GiB image limit", i,
                      (ull)p->memsz);
    if (!range_ok(p->vaddr, p->memsz, limit))
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_vaddr 0x%llx + p_memsz 0x%llx beyond the address space (limit 0x%llx)",
                      i, (ull)p->vaddr, (ull)p->memsz, (ull)limit);
    if (p->align > SL_ELF_MAX_SPAN || (p->align & (p->align - 1)) != 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_align 0x%llx is not a power of two <= 1 GiB", i,
                      (ull)p->align);
    if (((p->vaddr ^ p->offset) & (SL_PAGE_SIZE - 1)) != 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_vaddr 0x%llx and p_offset 0x%llx not congruent modulo 4096",
                      i, (ull)p->vaddr, (ull)p->offset);
    if (p->memsz == 0)
        return 0; /* occupies nothing */
    if (img->n_segments > 0) {
        const sl_elf_segment *prev = &img->seg[img->n_segments - 1];
        if (p->vaddr < prev->vaddr)
            return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_vaddr 0x%llx not sorted (previous segment at 0x%llx)",
                          i, (ull)p->vaddr, (ull)prev->vaddr);
        if (p->vaddr < prev->vaddr + prev->memsz)
            return sl_err(c->e, SL_EFORMAT, "ELF: PT_LOAD (phdr %u): p_vaddr 0x%llx overlaps the previous segment [0x%llx, 0x%llx)",
                          i, (ull)p->vaddr, (ull)prev->vaddr, (ull)(prev->vaddr + prev->memsz));
    }
    if (img->n_segments == SL_ELF_MAX_SEGMENTS)
        return sl_err(c->e, SL_ERANGE, "ELF: more than %u PT_LOAD segments", SL_ELF_MAX_SEGMENTS);
    img->seg[img->n_segments++] = (sl_elf_segment){
        .vaddr = p->vaddr, .memsz = p->memsz, .filesz = p->filesz, .offset = p->offset,
        .r = (p->flags & PF_R) != 0, .w = (p->flags & PF_W) != 0, .x = (p->flags & PF_X) != 0,
    };
    return 0;
}

/* ---- PT_NOTE ---- */

static int version_note(pctx *c, const uint8_t *desc, uint32_t descsz)
{
    sl_elf_image *img = c->img;
    if (descsz != 8)
        return sl_err(c->e, SL_EFORMAT, "ELF: sandlet version note: descsz %u, expected 8", descsz);
    if (img->has_version)
        return sl_err(c->e, SL_EFORMAT, "ELF: more than one sandlet version note");
    img->has_version = true;
    img->version_major = sl_get32(desc);
    img->version_minor = sl_get32(desc + 4);
    return 0;
}

static int scan_notes(pctx *c, unsigned i, const phdr *p)
{
    /* Notes in an 8-aligned segment (.note.gnu.property) pad name and desc to 8. */
    uint64_t align = p->align == 8 ? 8 : 4;
    const uint8_t *seg;
    uint64_t pos = 0;

    if (!range_ok(p->offset, p->filesz, c->len))
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_NOTE (phdr %u): p_offset 0x%llx + p_filesz 0x%llx past the end of the file (%zu bytes)",
                      i, (ull)p->offset, (ull)p->filesz, c->len);
    seg = c->buf + p->offset;
    while (pos < p->filesz) {
        uint64_t rem = p->filesz - pos;
        if (rem < 12)
            return sl_err(c->e, SL_EFORMAT, "ELF: PT_NOTE (phdr %u): truncated note header at +0x%llx", i, (ull)pos);
        uint32_t namesz = sl_get32(seg + pos), descsz = sl_get32(seg + pos + 4), type = sl_get32(seg + pos + 8);
        /* Offsets relative to the segment; all fit easily in 64 bits. */
        uint64_t name_off = pos + 12;
        uint64_t desc_off = (name_off + namesz + align - 1) & ~(align - 1);
        uint64_t next = (desc_off + descsz + align - 1) & ~(align - 1);
        if (name_off + namesz > p->filesz || desc_off + descsz > p->filesz)
            return sl_err(c->e, SL_EFORMAT, "ELF: PT_NOTE (phdr %u): note at +0x%llx (namesz %u, descsz %u) overruns the segment (p_filesz 0x%llx)",
                          i, (ull)pos, namesz, descsz, (ull)p->filesz);
        if (namesz == sizeof SL_NOTE_NAME && memcmp(seg + name_off, SL_NOTE_NAME, sizeof SL_NOTE_NAME) == 0 &&
            type == SL_NOTE_TYPE_VERSION) {
            int rc = version_note(c, seg + desc_off, descsz);
            if (rc)
                return rc;
        }
        pos = next; /* the last note's padding may be missing; the loop ends either way */
    }
    return 0;
}

static int check_version(pctx *c)
{
    const sl_elf_image *img = c->img;
    if (!img->has_version)
        return 0;
    if (img->version_major != SL_ABI_VERSION_MAJOR || img->version_minor > SL_ABI_VERSION_MINOR)
        return sl_err(c->e, SL_EVERSION, "guest built for sandlet ABI %u.%u, host supports %u.%u",
                      img->version_major, img->version_minor, SL_ABI_VERSION_MAJOR, SL_ABI_VERSION_MINOR);
    return 0;
}

/* ---- program headers ---- */

static int scan_phdrs(pctx *c, const ehdr *h)
{
    uint64_t entsize = c->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    for (unsigned i = 0; i < h->phnum; i++) {
        phdr p = read_phdr(c, h->phoff + i * entsize);
        int rc = 0;
        switch (p.type) {
        case PT_LOAD:
            rc = add_load(c, i, &p);
            break;
        case PT_NOTE:
            rc = scan_notes(c, i, &p);
            break;
        case PT_DYNAMIC:
            if (c->have_dynamic)
                return sl_err(c->e, SL_EFORMAT, "ELF: more than one PT_DYNAMIC (phdr %u)", i);
            c->have_dynamic = true;
            c->dynamic = p;
            break;
        case PT_INTERP:
            return sl_err(c->e, SL_EUNSUPPORTED,
                          "ELF: PT_INTERP (phdr %u): dynamically linked guests are not supported; link statically", i);
        default:
            break; /* PT_PHDR, PT_TLS, PT_GNU_* and friends do not affect loading */
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int finish_layout(pctx *c)
{
    sl_elf_image *img = c->img;
    if (img->n_segments == 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: no PT_LOAD segment with p_memsz > 0");
    const sl_elf_segment *last = &img->seg[img->n_segments - 1];
    img->base_va = img->seg[0].vaddr & SL_PAGE_MASK;
    /* add_load bounded every end by addr_limit(), so rounding up cannot wrap. */
    img->span = page_up(last->vaddr + last->memsz) - img->base_va;
    if (img->span > SL_ELF_MAX_SPAN)
        return sl_err(c->e, SL_ERANGE, "ELF: image spans 0x%llx bytes (0x%llx..0x%llx), more than the 1 GiB limit",
                      (ull)img->span, (ull)img->base_va, (ull)(img->base_va + img->span));
    for (unsigned i = 0; i < img->n_segments; i++) {
        const sl_elf_segment *s = &img->seg[i];
        if (s->x && img->entry >= s->vaddr && img->entry - s->vaddr < s->memsz)
            return 0;
    }
    return sl_err(c->e, SL_EFORMAT, "ELF: e_entry 0x%llx is not inside an executable PT_LOAD segment",
                  (ull)img->entry);
}

/* File offset of guest range [va, va+size), which must lie in the
 * file-backed part of one PT_LOAD segment. */
static bool va_to_off(const sl_elf_image *img, uint64_t va, uint64_t size, uint64_t *off)
{
    for (unsigned i = 0; i < img->n_segments; i++) {
        const sl_elf_segment *s = &img->seg[i];
        if (va >= s->vaddr && range_ok(va - s->vaddr, size, s->filesz)) {
            *off = s->offset + (va - s->vaddr);
            return true;
        }
    }
    return false;
}

/* ---- relocations ---- */

static const char *reloc_name(unsigned arch, uint32_t type)
{
    if (arch == SL_ARCH_AMD64) {
        switch (type) {
        case R_X86_64_64: return "R_X86_64_64";
        case R_X86_64_PC32: return "R_X86_64_PC32";
        case R_X86_64_COPY: return "R_X86_64_COPY";
        case R_X86_64_GLOB_DAT: return "R_X86_64_GLOB_DAT";
        case R_X86_64_JUMP_SLOT: return "R_X86_64_JUMP_SLOT";
        case R_X86_64_32: return "R_X86_64_32";
        case R_X86_64_DTPMOD64: return "R_X86_64_DTPMOD64";
        case R_X86_64_DTPOFF64: return "R_X86_64_DTPOFF64";
        case R_X86_64_TPOFF64: return "R_X86_64_TPOFF64";
        case R_X86_64_IRELATIVE: return "R_X86_64_IRELATIVE";
        default: return "unknown";
        }
    }
    switch (type) {
    case R_386_32: return "R_386_32";
    case R_386_PC32: return "R_386_PC32";
    case R_386_COPY: return "R_386_COPY";
    case R_386_GLOB_DAT: return "R_386_GLOB_DAT";
    case R_386_JMP_SLOT: return "R_386_JMP_SLOT";
    case R_386_TLS_TPOFF: return "R_386_TLS_TPOFF";
    case R_386_TLS_DTPMOD32: return "R_386_TLS_DTPMOD32";
    case R_386_IRELATIVE: return "R_386_IRELATIVE";
    default: return "unknown";
    }
}

/* Validates every entry of the relocation table; with dst != NULL also
 * applies them (dst[0] is base_va). *count gets the RELATIVE entries. */
static int walk_relocs(const sl_elf_image *img, const uint8_t *buf, size_t len, uint8_t *dst, uint64_t delta,
                       uint64_t *count, sl_errbuf *e)
{
    bool amd64 = img->arch == SL_ARCH_AMD64;
    uint64_t ent = amd64 ? sizeof(Elf64_Rela) : sizeof(Elf32_Rel);
    uint64_t width = amd64 ? 8 : 4;
    const char *rel_name = amd64 ? "R_X86_64_RELATIVE" : "R_386_RELATIVE";

    *count = 0;
    if (img->rel_size == 0)
        return 0;
    if (!range_ok(img->rel_offset, img->rel_size, len) || img->rel_size % ent != 0)
        return sl_err(e, SL_EFORMAT, "ELF: relocation table (offset 0x%llx, size 0x%llx) outside the file",
                      (ull)img->rel_offset, (ull)img->rel_size);
    for (uint64_t i = 0; i < img->rel_size / ent; i++) {
        const uint8_t *r = buf + img->rel_offset + i * ent;
        uint64_t where;
        uint32_t type;
        if (amd64) {
            where = sl_get64(r);
            type = (uint32_t)ELF64_R_TYPE(sl_get64(r + 8));
        } else {
            where = sl_get32(r);
            type = ELF32_R_TYPE(sl_get32(r + 4));
        }
        if (type == R_X86_64_NONE) /* == R_386_NONE */
            continue;
        if (type != R_X86_64_RELATIVE) /* == R_386_RELATIVE */
            return sl_err(e, SL_EUNSUPPORTED, "ELF: relocation %llu has type %u (%s); only %s is supported",
                          (ull)i, type, reloc_name(img->arch, type), rel_name);
        if (where < img->base_va || !range_ok(where - img->base_va, width, img->span))
            return sl_err(e, SL_EFORMAT, "ELF: relocation %llu: r_offset 0x%llx outside the image [0x%llx, 0x%llx)",
                          (ull)i, (ull)where, (ull)img->base_va, (ull)(img->base_va + img->span));
        (*count)++;
        if (!dst)
            continue;
        uint8_t *t = dst + (where - img->base_va);
        if (amd64)
            sl_put64(t, sl_get64(r + 16) + delta); /* r_addend + delta */
        else
            sl_put32(t, sl_get32(t) + (uint32_t)delta);
    }
    return 0;
}

/* The dynamic tags the loader cares about. */
enum { D_RELA, D_RELASZ, D_RELAENT, D_REL, D_RELSZ, D_RELENT, D_JMPREL, D_PLTRELSZ, D_RELR, D_RELRSZ, D_COUNT };

static int dyn_slot(int64_t tag)
{
    switch (tag) {
    case DT_RELA: return D_RELA;
    case DT_RELASZ: return D_RELASZ;
    case DT_RELAENT: return D_RELAENT;
    case DT_REL: return D_REL;
    case DT_RELSZ: return D_RELSZ;
    case DT_RELENT: return D_RELENT;
    case DT_JMPREL: return D_JMPREL;
    case DT_PLTRELSZ: return D_PLTRELSZ;
    case DT_RELR: return D_RELR;
    case DT_RELRSZ: return D_RELRSZ;
    default: return -1;
    }
}

static int read_dynamic(pctx *c, bool *seen, uint64_t *val)
{
    const phdr *d = &c->dynamic;
    uint64_t ent = c->is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
    uint64_t off;

    if (d->filesz % ent != 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_DYNAMIC p_filesz 0x%llx is not a multiple of %llu", (ull)d->filesz,
                      (ull)ent);
    if (!va_to_off(c->img, d->vaddr, d->filesz, &off))
        return sl_err(c->e, SL_EFORMAT, "ELF: PT_DYNAMIC [0x%llx, +0x%llx) is not inside a file-backed PT_LOAD segment",
                      (ull)d->vaddr, (ull)d->filesz);
    for (uint64_t i = 0; i < d->filesz / ent; i++) {
        const uint8_t *p = c->buf + off + i * ent;
        int64_t tag = c->is64 ? (int64_t)sl_get64(p) : (int32_t)sl_get32(p);
        uint64_t v = c->is64 ? sl_get64(p + 8) : sl_get32(p + 4);
        if (tag == DT_NULL)
            break;
        if (tag == DT_NEEDED)
            return sl_err(c->e, SL_EUNSUPPORTED, "ELF: DT_NEEDED: the guest needs shared libraries; link it statically");
        int s = dyn_slot(tag);
        if (s < 0)
            continue;
        if (seen[s])
            return sl_err(c->e, SL_EFORMAT, "ELF: dynamic tag %lld appears twice", (long long)tag);
        seen[s] = true;
        val[s] = v;
    }
    return 0;
}

static int check_dynamic(pctx *c)
{
    bool seen[D_COUNT] = {0};
    uint64_t val[D_COUNT] = {0};
    sl_elf_image *img = c->img;
    bool amd64 = c->is64;
    int rc;

    if (!c->have_dynamic)
        return 0;
    if ((rc = read_dynamic(c, seen, val)) != 0)
        return rc;
    if (seen[D_PLTRELSZ] && val[D_PLTRELSZ] != 0)
        return sl_err(c->e, SL_EUNSUPPORTED, "ELF: DT_JMPREL/DT_PLTRELSZ: PLT relocations (0x%llx bytes) are not supported",
                      (ull)val[D_PLTRELSZ]);
    if (seen[D_RELR] || (seen[D_RELRSZ] && val[D_RELRSZ] != 0))
        return sl_err(c->e, SL_EUNSUPPORTED, "ELF: DT_RELR packed relocations are not supported (link without -z pack-relative-relocs)");

    /* The table kind this architecture uses, and the other one which must be empty. */
    int addr = amd64 ? D_RELA : D_REL, sz = amd64 ? D_RELASZ : D_RELSZ, entk = amd64 ? D_RELAENT : D_RELENT;
    int o_addr = amd64 ? D_REL : D_RELA, o_sz = amd64 ? D_RELSZ : D_RELASZ;
    const char *nm = amd64 ? "DT_RELA" : "DT_REL";
    uint64_t want_ent = amd64 ? sizeof(Elf64_Rela) : sizeof(Elf32_Rel);

    if (seen[o_addr] && seen[o_sz] && val[o_sz] != 0)
        return sl_err(c->e, SL_EUNSUPPORTED, "ELF: %s relocation tables are not supported on %s",
                      amd64 ? "DT_REL" : "DT_RELA", amd64 ? "x86-64" : "i386");
    if (!seen[sz] || val[sz] == 0)
        return 0;
    if (!seen[addr])
        return sl_err(c->e, SL_EFORMAT, "ELF: %sSZ without %s", nm, nm);
    if (!seen[entk] || val[entk] != want_ent)
        return sl_err(c->e, SL_EFORMAT, "ELF: %sENT is %llu, expected %llu", nm, seen[entk] ? (ull)val[entk] : 0ull,
                      (ull)want_ent);
    if (val[sz] % want_ent != 0)
        return sl_err(c->e, SL_EFORMAT, "ELF: %sSZ 0x%llx is not a multiple of %llu", nm, (ull)val[sz], (ull)want_ent);
    if (!va_to_off(img, val[addr], val[sz], &img->rel_offset))
        return sl_err(c->e, SL_EFORMAT, "ELF: %s table [0x%llx, +0x%llx) is not inside a file-backed PT_LOAD segment", nm,
                      (ull)val[addr], (ull)val[sz]);
    img->rel_size = val[sz];
    return walk_relocs(img, c->buf, c->len, NULL, 0, &img->n_relocs, c->e);
}

int sl_elf_parse(const uint8_t *buf, size_t len, sl_elf_image *img, sl_errbuf *e)
{
    pctx c = {.buf = buf, .len = len, .img = img, .e = e};
    ehdr h = {0};
    int rc;

    if (!img || (!buf && len))
        return sl_err(e, SL_EINVAL, "ELF: NULL image or buffer");
    memset(img, 0, sizeof *img);
    if ((rc = check_ident(&c)) || (rc = read_ehdr(&c, &h)) || (rc = check_ehdr(&c, &h)))
        return rc;
    img->arch = c.is64 ? SL_ARCH_AMD64 : SL_ARCH_I686;
    img->pie = h.type == ET_DYN;
    img->entry = h.entry;
    if ((rc = scan_phdrs(&c, &h)) || (rc = check_version(&c)) || (rc = finish_layout(&c)) ||
        (rc = check_dynamic(&c)))
        return rc;
    /* musl finds its TLS image through AT_PHDR, so the loaded copy of the
     * headers must be found: the file-backed part of a PT_LOAD covering them. */
    img->phnum = h.phnum;
    img->phent = h.phentsize;
    uint64_t phsize = (uint64_t)h.phnum * h.phentsize;
    for (unsigned i = 0; i < img->n_segments; i++) {
        const sl_elf_segment *s = &img->seg[i];
        if (h.phoff >= s->offset && range_ok(h.phoff - s->offset, phsize, s->filesz)) {
            img->phdr_va = s->vaddr + (h.phoff - s->offset);
            break;
        }
    }
    return 0;
}

/* ---- load ---- */

static int check_load_args(const sl_elf_image *img, size_t dst_len, uint64_t load_addr, sl_errbuf *e)
{
    if (img->arch != SL_ARCH_AMD64 && img->arch != SL_ARCH_I686)
        return sl_err(e, SL_EINVAL, "ELF load: image arch %u unknown", img->arch);
    if (img->n_segments == 0 || img->n_segments > SL_ELF_MAX_SEGMENTS || img->span > SL_ELF_MAX_SPAN)
        return sl_err(e, SL_EINVAL, "ELF load: image not parsed (n_segments %u, span 0x%llx)", img->n_segments,
                      (ull)img->span);
    if (dst_len < img->span)
        return sl_err(e, SL_EINVAL, "ELF load: destination holds 0x%zx bytes, image spans 0x%llx", dst_len,
                      (ull)img->span);
    if (load_addr & (SL_PAGE_SIZE - 1))
        return sl_err(e, SL_EINVAL, "ELF load: load address 0x%llx is not page aligned", (ull)load_addr);
    if (!img->pie && load_addr != img->base_va)
        return sl_err(e, SL_EINVAL, "ELF load: ET_EXEC image must be loaded at its link address 0x%llx, not 0x%llx",
                      (ull)img->base_va, (ull)load_addr);
    if (!range_ok(load_addr, img->span, addr_limit(img->arch)))
        return sl_err(e, SL_EINVAL, "ELF load: load address 0x%llx + span 0x%llx beyond the address space",
                      (ull)load_addr, (ull)img->span);
    return 0;
}

int sl_elf_load(const sl_elf_image *img, const uint8_t *buf, size_t len, uint8_t *dst, size_t dst_len,
                uint64_t load_addr, sl_errbuf *e)
{
    uint64_t n;
    int rc;

    if (!img || !dst || (!buf && len))
        return sl_err(e, SL_EINVAL, "ELF load: NULL argument");
    if ((rc = check_load_args(img, dst_len, load_addr, e)) != 0)
        return rc;
    memset(dst, 0, img->span);
    /* The image is the caller's, so re-check what the copies rely on. */
    for (unsigned i = 0; i < img->n_segments; i++) {
        const sl_elf_segment *s = &img->seg[i];
        if (s->filesz > s->memsz || !range_ok(s->offset, s->filesz, len) || s->vaddr < img->base_va ||
            !range_ok(s->vaddr - img->base_va, s->memsz, img->span))
            return sl_err(e, SL_EINVAL, "ELF load: segment %u does not match the file or span", i);
        memcpy(dst + (s->vaddr - img->base_va), buf + s->offset, s->filesz);
    }
    return walk_relocs(img, buf, len, dst, load_addr - img->base_va, &n, e);
}

/* ELF loader tests. The main material is ELF images built in memory here
 * (ELF64 and ELF32, PIE and fixed, with text, data+bss, PT_DYNAMIC with
 * RELATIVE relocations and a version note), mutated one field at a time for
 * the rejections. With argv[1] = the directory build.sh filled, the gcc-built
 * fixtures are loaded too, and missing ones are a failure. */
#include <elf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "sl_elf.h"
#include "sl_layout.h"
#include "le.h"
#include "t.h"

/* ---- the in-memory image builder ----
 * File layout (offsets), identical for both classes:
 *   0x0000 ELF header, then 5 program headers
 *   0x1000 text   (vaddr base+0x1000, 0x200 bytes, R X); relocation table at +0x100
 *   0x1200..0x2000 filler 0xEE that must never be loaded
 *   0x2000 data   (vaddr base+0x3000, filesz 0x200, memsz 0x1800, R W);
 *          dynamic table at +0, relocated pointer slots at +0x100
 *   0x2200 notes  (a GNU build-id note, then the sandlet version note)
 * So base_va = base+0x1000, span = 0x4000, with a hole page at base+0x2000. */
#define CAP 0x3000
#define TEXT_OFF 0x1000u
#define TEXT_SZ 0x200u
#define REL_AT 0x100u
#define DATA_OFF 0x2000u
#define DATA_FILESZ 0x200u
#define DATA_MEMSZ 0x1800u
#define SLOTS_AT 0x100u
#define NOTE_OFF 0x2200u
#define SPAN 0x4000u
#define DYN_CAP 8u

enum { PH_TEXT, PH_DATA, PH_DYN, PH_NOTE, PH_STACK, PH_N };

typedef struct rel {
    uint64_t off;
    uint32_t type;
    uint64_t addend; /* RELA addend, or for REL the value stored at the target */
} rel;

typedef struct spec {
    bool is64, pie, dynamic, note, note_align8;
    uint64_t base;
    uint32_t major, minor;
    unsigned n_rel;
    rel rel[8];
} spec;

typedef struct elf_t {
    uint8_t b[CAP];
    size_t len;
    spec s;
    uint64_t text_va, data_va, entry;
    size_t dyn_off, sl_note_off; /* file offsets */
} elf_t;

typedef struct ph {
    uint32_t type, flags;
    uint64_t offset, vaddr, filesz, memsz, align;
} ph;

static size_t ehsize(const elf_t *el) { return el->s.is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr); }
static size_t phsize(const elf_t *el) { return el->s.is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr); }

/* The ELF header, widened to Elf64_Ehdr for either class. */
static Elf64_Ehdr eh_get(const elf_t *el)
{
    Elf64_Ehdr h;
    if (el->s.is64) {
        memcpy(&h, el->b, sizeof h);
        return h;
    }
    Elf32_Ehdr r;
    memcpy(&r, el->b, sizeof r);
    memcpy(h.e_ident, r.e_ident, EI_NIDENT);
    h.e_type = r.e_type, h.e_machine = r.e_machine, h.e_version = r.e_version, h.e_entry = r.e_entry;
    h.e_phoff = r.e_phoff, h.e_shoff = r.e_shoff, h.e_flags = r.e_flags, h.e_ehsize = r.e_ehsize;
    h.e_phentsize = r.e_phentsize, h.e_phnum = r.e_phnum, h.e_shentsize = r.e_shentsize;
    h.e_shnum = r.e_shnum, h.e_shstrndx = r.e_shstrndx;
    return h;
}

static void eh_put(elf_t *el, const Elf64_Ehdr *h)
{
    if (el->s.is64) {
        memcpy(el->b, h, sizeof *h);
        return;
    }
    Elf32_Ehdr r;
    memcpy(r.e_ident, h->e_ident, EI_NIDENT);
    r.e_type = h->e_type, r.e_machine = h->e_machine, r.e_version = (Elf32_Word)h->e_version;
    r.e_entry = (Elf32_Addr)h->e_entry, r.e_phoff = (Elf32_Off)h->e_phoff, r.e_shoff = (Elf32_Off)h->e_shoff;
    r.e_flags = h->e_flags, r.e_ehsize = h->e_ehsize, r.e_phentsize = h->e_phentsize, r.e_phnum = h->e_phnum;
    r.e_shentsize = h->e_shentsize, r.e_shnum = h->e_shnum, r.e_shstrndx = h->e_shstrndx;
    memcpy(el->b, &r, sizeof r);
}

static ph ph_get(const elf_t *el, unsigned i)
{
    size_t off = ehsize(el) + i * phsize(el);
    if (el->s.is64) {
        Elf64_Phdr r;
        memcpy(&r, el->b + off, sizeof r);
        return (ph){r.p_type, r.p_flags, r.p_offset, r.p_vaddr, r.p_filesz, r.p_memsz, r.p_align};
    }
    Elf32_Phdr r;
    memcpy(&r, el->b + off, sizeof r);
    return (ph){r.p_type, r.p_flags, r.p_offset, r.p_vaddr, r.p_filesz, r.p_memsz, r.p_align};
}

/* Writes a program header; for ELF32 the 64-bit values are truncated. */
static void ph_put(elf_t *el, unsigned i, const ph *p)
{
    size_t off = ehsize(el) + i * phsize(el);
    if (el->s.is64) {
        Elf64_Phdr r = {p->type, p->flags, p->offset, p->vaddr, p->vaddr, p->filesz, p->memsz, p->align};
        memcpy(el->b + off, &r, sizeof r);
        return;
    }
    Elf32_Phdr r = {p->type, (Elf32_Off)p->offset, (Elf32_Addr)p->vaddr, (Elf32_Addr)p->vaddr,
                    (Elf32_Word)p->filesz, (Elf32_Word)p->memsz, p->flags, (Elf32_Word)p->align};
    memcpy(el->b + off, &r, sizeof r);
}

static void dyn_put(elf_t *el, unsigned i, int64_t tag, uint64_t val)
{
    if (el->s.is64) {
        sl_put64(el->b + el->dyn_off + i * 16, (uint64_t)tag);
        sl_put64(el->b + el->dyn_off + i * 16 + 8, val);
    } else {
        sl_put32(el->b + el->dyn_off + i * 8, (uint32_t)tag);
        sl_put32(el->b + el->dyn_off + i * 8 + 4, (uint32_t)val);
    }
}

static void rel_put(elf_t *el, unsigned i, const rel *r)
{
    uint8_t *p = el->b + TEXT_OFF + REL_AT + i * (el->s.is64 ? 24 : 8);
    if (el->s.is64) {
        sl_put64(p, r->off);
        sl_put64(p + 8, ELF64_R_INFO(0, r->type));
        sl_put64(p + 16, r->addend);
        return;
    }
    sl_put32(p, (uint32_t)r->off);
    sl_put32(p + 4, ELF32_R_INFO(0, r->type));
    /* REL: the addend lives at the target, if that is file-backed. */
    uint64_t text_end = el->text_va + TEXT_SZ, data_end = el->data_va + DATA_FILESZ;
    if (r->type == R_386_RELATIVE && r->off >= el->text_va && r->off + 4 <= text_end)
        sl_put32(el->b + TEXT_OFF + (r->off - el->text_va), (uint32_t)r->addend);
    if (r->type == R_386_RELATIVE && r->off >= el->data_va && r->off + 4 <= data_end)
        sl_put32(el->b + DATA_OFF + (r->off - el->data_va), (uint32_t)r->addend);
}

static size_t note_put(uint8_t *p, size_t pos, size_t align, const char *name, uint32_t namesz, const void *desc,
                       uint32_t descsz, uint32_t type)
{
    sl_put32(p + pos, namesz);
    sl_put32(p + pos + 4, descsz);
    sl_put32(p + pos + 8, type);
    memcpy(p + pos + 12, name, namesz);
    size_t d = (pos + 12 + namesz + align - 1) & ~(align - 1);
    memcpy(p + d, desc, descsz);
    return (d + descsz + align - 1) & ~(align - 1);
}

static spec spec_default(bool is64, bool pie)
{
    spec s = {.is64 = is64, .pie = pie, .dynamic = pie, .note = true, .major = SL_ABI_VERSION_MAJOR,
              .minor = SL_ABI_VERSION_MINOR};
    s.base = pie ? 0 : is64 ? 0x400000 : 0x8048000;
    if (pie) {
        uint64_t text = s.base + 0x1000, data = s.base + 0x3000, w = is64 ? 8 : 4;
        for (unsigned i = 0; i < 4; i++)
            s.rel[i] = (rel){data + SLOTS_AT + w * i, R_X86_64_RELATIVE, text + 0x10 * i};
        s.rel[4] = (rel){0, R_X86_64_NONE, 0};
        s.rel[5] = (rel){text + 0x30, R_X86_64_RELATIVE, data + 0x40}; /* a text relocation */
        s.n_rel = 6;
    }
    return s;
}

static void build(elf_t *el, const spec *s)
{
    memset(el, 0, sizeof *el);
    el->s = *s;
    el->text_va = s->base + 0x1000;
    el->data_va = s->base + 0x3000;
    el->entry = el->text_va + 0x10;
    memset(el->b, 0xEE, CAP);
    for (unsigned k = 0; k < TEXT_SZ; k++)
        el->b[TEXT_OFF + k] = (uint8_t)(0x11 + 3 * k);
    for (unsigned k = 0; k < DATA_FILESZ; k++)
        el->b[DATA_OFF + k] = (uint8_t)(0x80 ^ k);

    Elf64_Ehdr h = {0};
    memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = s->is64 ? ELFCLASS64 : ELFCLASS32;
    h.e_ident[EI_DATA] = ELFDATA2LSB;
    h.e_ident[EI_VERSION] = EV_CURRENT;
    h.e_type = s->pie ? ET_DYN : ET_EXEC;
    h.e_machine = s->is64 ? EM_X86_64 : EM_386;
    h.e_version = EV_CURRENT;
    h.e_entry = el->entry;
    h.e_phoff = ehsize(el);
    h.e_ehsize = (uint16_t)ehsize(el);
    h.e_phentsize = (uint16_t)phsize(el);
    h.e_phnum = PH_N;
    eh_put(el, &h);

    ph text = {PT_LOAD, PF_R | PF_X, TEXT_OFF, el->text_va, TEXT_SZ, TEXT_SZ, 0x1000};
    ph data = {PT_LOAD, PF_R | PF_W, DATA_OFF, el->data_va, DATA_FILESZ, DATA_MEMSZ, 0x1000};
    ph stack = {PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 16};
    ph_put(el, PH_TEXT, &text);
    ph_put(el, PH_DATA, &data);
    ph_put(el, PH_STACK, &stack);

    /* Dynamic table: DT_NULL-filled, then the relocation entries and an ignored tag. */
    el->dyn_off = DATA_OFF;
    size_t dent = s->is64 ? 16 : 8;
    ph dyn = {s->dynamic ? PT_DYNAMIC : PT_NULL, PF_R | PF_W, DATA_OFF, el->data_va, DYN_CAP * dent,
              DYN_CAP * dent, 8};
    ph_put(el, PH_DYN, &dyn);
    for (unsigned i = 0; i < DYN_CAP; i++)
        dyn_put(el, i, DT_NULL, 0);
    if (s->dynamic) {
        size_t rent = s->is64 ? 24 : 8;
        dyn_put(el, 0, DT_FLAGS_1, DF_1_PIE);
        dyn_put(el, 1, s->is64 ? DT_RELA : DT_REL, el->text_va + REL_AT);
        dyn_put(el, 2, s->is64 ? DT_RELASZ : DT_RELSZ, s->n_rel * rent);
        dyn_put(el, 3, s->is64 ? DT_RELAENT : DT_RELENT, rent);
    }
    for (unsigned i = 0; i < s->n_rel; i++)
        rel_put(el, i, &s->rel[i]);

    size_t align = s->note_align8 ? 8 : 4, pos = 0;
    uint8_t *notes = el->b + NOTE_OFF;
    uint8_t id[20];
    memset(id, 0xAB, sizeof id);
    pos = note_put(notes, pos, align, "GNU", 4, id, sizeof id, NT_GNU_BUILD_ID);
    if (s->note) {
        uint32_t v[2] = {s->major, s->minor};
        el->sl_note_off = NOTE_OFF + pos;
        pos = note_put(notes, pos, align, SL_NOTE_NAME, 8, v, 8, SL_NOTE_TYPE_VERSION);
    }
    ph note = {PT_NOTE, PF_R, NOTE_OFF, 0, pos, pos, align};
    ph_put(el, PH_NOTE, &note);
    el->len = NOTE_OFF + pos;
}

/* Parses an exact-size heap copy so that ASan catches any read past the end. */
static int parse_exact(const uint8_t *b, size_t len, sl_elf_image *img, sl_errbuf *e)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, b, len);
    e->msg[0] = 0;
    int rc = sl_elf_parse(copy, len, img, e);
    free(copy);
    return rc;
}

static int parse(const elf_t *el, sl_elf_image *img, sl_errbuf *e)
{
    return parse_exact(el->b, el->len, img, e);
}

/* Expects parse to fail with `code` and a message containing `needle`. */
static bool fails(const elf_t *el, int code, const char *needle, int line)
{
    sl_elf_image img;
    sl_errbuf e;
    int rc = parse(el, &img, &e);
    bool ok = rc == code && e.msg[0] && (!needle || strstr(e.msg, needle));
    if (!ok)
        printf("  line %d: expected %d containing \"%s\", got %d \"%s\"\n", line, code, needle ? needle : "", rc,
               e.msg);
    return ok;
}
#define FAILS(el, code, needle) CHECK(fails((el), (code), (needle), __LINE__))

static void set_ph_field(elf_t *el, unsigned i, size_t field_off, uint64_t v)
{
    ph p = ph_get(el, i);
    memcpy((uint8_t *)&p + field_off, &v, sizeof v);
    ph_put(el, i, &p);
}
#define SET_PH(el, i, field, v) set_ph_field((el), (i), offsetof(ph, field), (v))

/* ---- accepted images ---- */

static void check_parsed(const elf_t *el, const sl_elf_image *img)
{
    CHECK_EQ(img->arch, el->s.is64 ? SL_ARCH_AMD64 : SL_ARCH_I686);
    CHECK_EQ(img->pie, el->s.pie);
    CHECK_EQ(img->base_va, el->s.base + 0x1000);
    CHECK_EQ(img->span, SPAN);
    CHECK_EQ(img->entry, el->entry);
    CHECK_EQ(img->n_segments, 2);
    CHECK_EQ(img->seg[0].vaddr, el->text_va);
    CHECK_EQ(img->seg[0].offset, TEXT_OFF);
    CHECK_EQ(img->seg[0].filesz, TEXT_SZ);
    CHECK_EQ(img->seg[0].memsz, TEXT_SZ);
    CHECK(img->seg[0].r && !img->seg[0].w && img->seg[0].x);
    CHECK_EQ(img->seg[1].vaddr, el->data_va);
    CHECK_EQ(img->seg[1].offset, DATA_OFF);
    CHECK_EQ(img->seg[1].filesz, DATA_FILESZ);
    CHECK_EQ(img->seg[1].memsz, DATA_MEMSZ);
    CHECK(img->seg[1].r && img->seg[1].w && !img->seg[1].x);
    CHECK_EQ(img->has_version, el->s.note);
    if (el->s.note) {
        CHECK_EQ(img->version_major, el->s.major);
        CHECK_EQ(img->version_minor, el->s.minor);
    }
    unsigned relative = 0;
    for (unsigned i = 0; i < el->s.n_rel; i++)
        relative += el->s.rel[i].type == R_X86_64_RELATIVE;
    CHECK_EQ(img->n_relocs, relative);
}

/* What the loaded span must look like, computed independently of the loader. */
static void expected_image(const elf_t *el, uint64_t load_addr, uint8_t *want)
{
    uint64_t base_va = el->s.base + 0x1000, delta = load_addr - base_va;
    memset(want, 0, SPAN);
    memcpy(want + (el->text_va - base_va), el->b + TEXT_OFF, TEXT_SZ);
    memcpy(want + (el->data_va - base_va), el->b + DATA_OFF, DATA_FILESZ);
    for (unsigned i = 0; i < el->s.n_rel; i++) {
        const rel *r = &el->s.rel[i];
        if (r->type != R_X86_64_RELATIVE)
            continue;
        uint8_t *t = want + (r->off - base_va);
        if (el->s.is64)
            sl_put64(t, r->addend + delta);
        else
            sl_put32(t, sl_get32(t) + (uint32_t)delta);
    }
}

/* Loads at load_addr into a buffer one page larger than the span and checks
 * every byte, plus that the extra page was left alone. */
static void load_and_check(const elf_t *el, uint64_t load_addr)
{
    sl_elf_image img;
    sl_errbuf e;
    size_t cap = SPAN + 0x1000;
    uint8_t *dst = malloc(cap), *want = malloc(SPAN);
    REQUIRE(dst && want);
    memset(dst, 0xCC, cap);
    int rc = parse(el, &img, &e);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        rc = sl_elf_load(&img, el->b, el->len, dst, cap, load_addr, &e);
        CHECK_EQ(rc, 0);
        expected_image(el, load_addr, want);
        CHECK(memcmp(dst, want, SPAN) == 0);
        for (size_t k = SPAN; k < cap; k++)
            if (dst[k] != 0xCC) {
                CHECK(!"load wrote past the span");
                break;
            }
    }
    free(dst);
    free(want);
}

static void test_parse_pie64(void)
{
    spec s = spec_default(true, true);
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    check_parsed(&el, &img);
    CHECK_EQ(img.base_va, 0x1000);
    CHECK_EQ(img.n_relocs, 5);
}

static void test_load_pie64(void)
{
    spec s = spec_default(true, true);
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    uint64_t load = 0x7000000;
    uint8_t *dst = malloc(SPAN);
    REQUIRE(dst);
    memset(dst, 0x5A, SPAN);
    REQUIRE(sl_elf_load(&img, el.b, el.len, dst, SPAN, load, &e) == 0);
    /* Spot checks with concrete numbers: dst[0] is vaddr 0x1000 at guest 0x7000000. */
    CHECK_EQ(dst[0], 0x11);                      /* first text byte */
    CHECK_EQ(dst[0x1ff], (uint8_t)(0x11 + 3 * 0x1ff));
    CHECK_EQ(dst[0x200], 0);                     /* text page tail */
    CHECK_EQ(dst[0x1000], 0);                    /* hole page: not the 0xEE filler */
    CHECK_EQ(dst[0x1fff], 0);
    CHECK_EQ(dst[0x2000 + 0x180], (uint8_t)(0x80 ^ 0x180)); /* data */
    CHECK_EQ(dst[0x2000 + 0x200], 0);            /* bss, not the note bytes that follow data in the file */
    CHECK_EQ(dst[0x2000 + 0x17ff], 0);
    CHECK_EQ(dst[SPAN - 1], 0);                  /* page tail after bss */
    CHECK_EQ(sl_get64(dst + 0x2000 + SLOTS_AT), 0x7000000);     /* vaddr 0x1000 relocated */
    CHECK_EQ(sl_get64(dst + 0x2000 + SLOTS_AT + 8), 0x7000010);
    CHECK_EQ(sl_get64(dst + 0x2000 + SLOTS_AT + 24), 0x7000030);
    CHECK_EQ(sl_get64(dst + 0x30), 0x7002040);                  /* text reloc -> vaddr 0x3040 */
    free(dst);
    load_and_check(&el, load);
    load_and_check(&el, 0x1000);              /* delta 0 */
    load_and_check(&el, 0x7ffff0000000ull);   /* high in the canonical half */
}

static void test_pie32(void)
{
    spec s = spec_default(false, true);
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    check_parsed(&el, &img);
    CHECK_EQ(img.arch, SL_ARCH_I686);
    uint8_t *dst = calloc(1, SPAN);
    REQUIRE(dst);
    REQUIRE(sl_elf_load(&img, el.b, el.len, dst, SPAN, 0x100000, &e) == 0);
    /* REL: slot i held vaddr 0x1000 + 0x10 i; delta = 0x100000 - 0x1000. */
    CHECK_EQ(sl_get32(dst + 0x2000 + SLOTS_AT), 0x100000);
    CHECK_EQ(sl_get32(dst + 0x2000 + SLOTS_AT + 12), 0x100030);
    CHECK_EQ(sl_get32(dst + 0x30), 0x102040);
    CHECK_EQ(sl_get32(dst + 0x2000 + SLOTS_AT + 16), sl_get32(el.b + DATA_OFF + SLOTS_AT + 16)); /* untouched */
    free(dst);
    load_and_check(&el, 0x100000);
    load_and_check(&el, 0xFFFFB000ull); /* ends exactly at 4 GiB */
}

static void test_pie32_negative_delta(void)
{
    /* Linked high, loaded low: the u32 addition must wrap correctly. */
    spec s = spec_default(false, true);
    s.base = 0x10000000;
    for (unsigned i = 0; i < s.n_rel; i++)
        if (s.rel[i].type)
            s.rel[i].off += s.base, s.rel[i].addend += s.base;
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    CHECK_EQ(img.base_va, 0x10001000);
    uint8_t *dst = calloc(1, SPAN);
    REQUIRE(dst);
    REQUIRE(sl_elf_load(&img, el.b, el.len, dst, SPAN, 0x4000, &e) == 0);
    CHECK_EQ(sl_get32(dst + 0x2000 + SLOTS_AT + 4), 0x4010);
    free(dst);
    load_and_check(&el, 0x4000);
}

static void test_exec(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, false);
        elf_t el;
        build(&el, &s);
        sl_elf_image img;
        sl_errbuf e;
        REQUIRE(parse(&el, &img, &e) == 0);
        check_parsed(&el, &img);
        CHECK(!img.pie);
        CHECK_EQ(img.n_relocs, 0);
        load_and_check(&el, img.base_va);
        uint8_t *dst = calloc(1, SPAN);
        REQUIRE(dst);
        CHECK_EQ(sl_elf_load(&img, el.b, el.len, dst, SPAN, img.base_va + 0x1000, &e), SL_EINVAL);
        CHECK(strstr(e.msg, "ET_EXEC") != NULL);
        free(dst);
    }
}

static void test_no_version_note(void)
{
    spec s = spec_default(true, true);
    s.note = false;
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    CHECK(!img.has_version);
}

static void test_note_align8(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        s.note_align8 = true;
        s.minor = 0;
        elf_t el;
        build(&el, &s);
        sl_elf_image img;
        sl_errbuf e;
        REQUIRE(parse(&el, &img, &e) == 0);
        CHECK(img.has_version);
        CHECK_EQ(img.version_major, SL_ABI_VERSION_MAJOR);
        CHECK_EQ(img.version_minor, 0);
    }
}

/* ---- version note ---- */

static void test_version_major_mismatch(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        s.major = SL_ABI_VERSION_MAJOR + 1;
        s.minor = 0;
        elf_t el;
        build(&el, &s);
        char want[96];
        snprintf(want, sizeof want, "guest built for sandlet ABI %u.0, host supports %u.%u", SL_ABI_VERSION_MAJOR + 1,
                 SL_ABI_VERSION_MAJOR, SL_ABI_VERSION_MINOR);
        FAILS(&el, SL_EVERSION, want);
        s.major = SL_ABI_VERSION_MAJOR - 1; /* older major is just as incompatible */
        s.minor = 7;
        build(&el, &s);
        snprintf(want, sizeof want, "ABI %u.7, host supports %u.%u", SL_ABI_VERSION_MAJOR - 1, SL_ABI_VERSION_MAJOR,
                 SL_ABI_VERSION_MINOR);
        FAILS(&el, SL_EVERSION, want);
    }
}

static void test_version_minor_newer(void)
{
    spec s = spec_default(true, true);
    s.minor = SL_ABI_VERSION_MINOR + 1;
    elf_t el;
    build(&el, &s);
    char want[96];
    snprintf(want, sizeof want, "guest built for sandlet ABI %u.%u, host supports %u.%u", SL_ABI_VERSION_MAJOR,
             SL_ABI_VERSION_MINOR + 1, SL_ABI_VERSION_MAJOR, SL_ABI_VERSION_MINOR);
    FAILS(&el, SL_EVERSION, want);
}

static void test_note_malformed(void)
{
    spec s = spec_default(true, true);
    elf_t el;
    build(&el, &s);
    sl_put32(el.b + el.sl_note_off + 4, 4); /* descsz 4 */
    FAILS(&el, SL_EFORMAT, "descsz");

    build(&el, &s);
    sl_put32(el.b + el.sl_note_off + 4, 0xFFFFFFFFu); /* descsz overruns */
    FAILS(&el, SL_EFORMAT, "PT_NOTE");

    build(&el, &s);
    sl_put32(el.b + el.sl_note_off, 0xFFFFFFF0u); /* namesz overruns */
    FAILS(&el, SL_EFORMAT, "PT_NOTE");

    build(&el, &s);
    SET_PH(&el, PH_NOTE, filesz, el.len - NOTE_OFF + 1); /* past EOF */
    FAILS(&el, SL_EFORMAT, "PT_NOTE");

    build(&el, &s);
    SET_PH(&el, PH_NOTE, filesz, el.len - NOTE_OFF + 8); /* in the file, but a truncated note header */
    memset(el.b + el.len, 0, 8);
    el.len += 8;
    FAILS(&el, SL_EFORMAT, "truncated note");

    /* Two version notes. */
    uint32_t v[2] = {1, 0};
    build(&el, &s);
    size_t pos = NOTE_OFF;
    pos = note_put(el.b, pos, 4, SL_NOTE_NAME, 8, v, 8, SL_NOTE_TYPE_VERSION);
    pos = note_put(el.b, pos, 4, SL_NOTE_NAME, 8, v, 8, SL_NOTE_TYPE_VERSION);
    SET_PH(&el, PH_NOTE, filesz, pos - NOTE_OFF);
    el.len = pos;
    FAILS(&el, SL_EFORMAT, "more than one");

    /* A "sandlet" note of another type is ignored. */
    build(&el, &s);
    sl_put32(el.b + el.sl_note_off + 8, SL_NOTE_TYPE_VERSION + 1);
    sl_elf_image img;
    sl_errbuf e;
    CHECK_EQ(parse(&el, &img, &e), 0);
    CHECK(!img.has_version);
}

/* ---- header rejections ---- */

static void test_truncated(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        build(&el, &s);
        sl_elf_image img;
        sl_errbuf e;
        size_t eh = ehsize(&el);
        for (size_t len = 0; len <= eh; len++) {
            int rc = parse_exact(el.b, len, &img, &e);
            if (rc != SL_EFORMAT || !e.msg[0]) {
                printf("  %s len %zu: rc %d \"%s\"\n", is64 ? "ELF64" : "ELF32", len, rc, e.msg);
                CHECK(!"truncated header accepted or wrong code");
                break;
            }
        }
        /* Any cut of the whole file removes at least part of the trailing note. */
        for (size_t len = eh; len < el.len; len++) {
            int rc = parse_exact(el.b, len, &img, &e);
            if (rc >= 0) {
                printf("  %s len %zu accepted\n", is64 ? "ELF64" : "ELF32", len);
                CHECK(!"truncated file accepted");
                break;
            }
        }
        CHECK_EQ(parse_exact(el.b, el.len, &img, &e), 0);
        CHECK_EQ(sl_elf_parse(NULL, 0, &img, &e), SL_EFORMAT);
        CHECK_EQ(sl_elf_parse(el.b, el.len, NULL, &e), SL_EINVAL);
    }
}

static void test_bad_ident(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        for (int k = 0; k < SELFMAG; k++) {
            build(&el, &s);
            el.b[k] ^= 0x20;
            FAILS(&el, SL_EFORMAT, "magic");
        }
        build(&el, &s);
        el.b[EI_CLASS] = ELFCLASSNONE;
        FAILS(&el, SL_EFORMAT, "EI_CLASS");
        el.b[EI_CLASS] = 3;
        FAILS(&el, SL_EFORMAT, "EI_CLASS");
        build(&el, &s);
        el.b[EI_DATA] = ELFDATA2MSB;
        FAILS(&el, SL_EFORMAT, "EI_DATA");
        build(&el, &s);
        el.b[EI_VERSION] = 0;
        FAILS(&el, SL_EFORMAT, "EI_VERSION");
        build(&el, &s);
        el.b[EI_OSABI] = ELFOSABI_FREEBSD;
        FAILS(&el, SL_EUNSUPPORTED, "EI_OSABI");
        build(&el, &s);
        el.b[EI_OSABI] = ELFOSABI_GNU;
        sl_elf_image img;
        sl_errbuf e;
        CHECK_EQ(parse(&el, &img, &e), 0);
    }
    /* The class decides the machine: an ELF64 header claiming i386 and vice versa. */
    spec s64 = spec_default(true, true), s32 = spec_default(false, true);
    elf_t el;
    build(&el, &s64);
    Elf64_Ehdr h = eh_get(&el);
    h.e_machine = EM_386;
    eh_put(&el, &h);
    FAILS(&el, SL_EUNSUPPORTED, "e_machine");
    h.e_machine = EM_AARCH64;
    eh_put(&el, &h);
    FAILS(&el, SL_EUNSUPPORTED, "e_machine");
    build(&el, &s32);
    h = eh_get(&el);
    h.e_machine = EM_X86_64;
    eh_put(&el, &h);
    FAILS(&el, SL_EUNSUPPORTED, "EM_386");
    /* An ELF32 file relabelled as ELF64 (and vice versa) must not parse. */
    build(&el, &s32);
    el.b[EI_CLASS] = ELFCLASS64;
    {
        sl_elf_image img;
        sl_errbuf e;
        CHECK(parse(&el, &img, &e) < 0); /* any error will do */
    }
}

static void test_bad_ehdr_fields(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        Elf64_Ehdr h;
#define MUT(stmt, code, needle) \
    build(&el, &s);             \
    h = eh_get(&el);            \
    stmt;                       \
    eh_put(&el, &h);            \
    FAILS(&el, code, needle)
        MUT(h.e_type = ET_REL, SL_EUNSUPPORTED, "e_type");
        MUT(h.e_type = ET_CORE, SL_EUNSUPPORTED, "e_type");
        MUT(h.e_type = 0x1234, SL_EFORMAT, "e_type");
        MUT(h.e_version = 0, SL_EFORMAT, "e_version");
        MUT(h.e_ehsize = 12, SL_EFORMAT, "e_ehsize");
        MUT(h.e_phentsize = (uint16_t)(h.e_phentsize + 8), SL_EFORMAT, "e_phentsize");
        MUT(h.e_phentsize = 0, SL_EFORMAT, "e_phentsize");
        MUT(h.e_phnum = 0, SL_EFORMAT, "e_phnum");
        MUT(h.e_phnum = SL_ELF_MAX_PHDRS + 1, SL_ERANGE, "e_phnum");
        MUT(h.e_phnum = 0xFFFF, SL_ERANGE, "e_phnum");
        /* phoff past EOF, at EOF, and so close that the table straddles EOF. */
        MUT(h.e_phoff = el.len + 0x1000, SL_EFORMAT, "e_phoff");
        MUT(h.e_phoff = el.len, SL_EFORMAT, "e_phoff");
        MUT(h.e_phoff = el.len - phsize(&el), SL_EFORMAT, "e_phoff");
        /* phoff + phnum * phentsize overflows the offset type. */
        MUT((h.e_phoff = is64 ? UINT64_MAX - 8 : UINT32_MAX - 8, h.e_phnum = SL_ELF_MAX_PHDRS), SL_EFORMAT,
            "e_phoff");
        MUT((h.e_phoff = is64 ? UINT64_MAX - 8 : UINT32_MAX - 8, h.e_phnum = 0xFFFF), SL_ERANGE, "e_phnum");
        MUT(h.e_entry = el.data_va + 0x10, SL_EFORMAT, "e_entry"); /* data is not executable */
        MUT(h.e_entry = el.text_va + TEXT_SZ, SL_EFORMAT, "e_entry"); /* one past text */
        MUT(h.e_entry = el.text_va - 1, SL_EFORMAT, "e_entry");
        MUT(h.e_entry = 0, SL_EFORMAT, "e_entry");
#undef MUT
        build(&el, &s);
        h = eh_get(&el);
        h.e_entry = el.text_va + TEXT_SZ - 1; /* last text byte is fine */
        eh_put(&el, &h);
        sl_elf_image img;
        sl_errbuf e;
        CHECK_EQ(parse(&el, &img, &e), 0);
    }
}

/* ---- program header rejections ---- */

static void test_bad_segments(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        uint64_t vmax = is64 ? UINT64_MAX : UINT32_MAX;
#define MUT(i, field, v, code, needle) \
    build(&el, &s);                    \
    SET_PH(&el, i, field, v);          \
    FAILS(&el, code, needle)
        /* segment past EOF: by size, by offset (congruent with its vaddr), and by overflow */
        MUT(PH_DATA, filesz, el.len - DATA_OFF + 1, SL_EFORMAT, "past the end");
        MUT(PH_DATA, offset, (el.len + 0x1000) & ~0xFFFull, SL_EFORMAT, "past the end");
        MUT(PH_DATA, offset, vmax & ~0xFFFull, SL_EFORMAT, "past the end");
        /* offset + filesz wraps around to a small number */
        build(&el, &s);
        SET_PH(&el, PH_DATA, offset, vmax & ~0xFFFull);
        SET_PH(&el, PH_DATA, filesz, DATA_MEMSZ);
        FAILS(&el, SL_EFORMAT, "past the end");
        MUT(PH_TEXT, filesz, TEXT_SZ + 1, SL_EFORMAT, "p_filesz");
        /* overlap: equal start, text grown over data, and unsorted */
        MUT(PH_DATA, vaddr, el.text_va, SL_EFORMAT, "overlaps");
        MUT(PH_TEXT, memsz, 0x2001, SL_EFORMAT, "overlaps");
        MUT(PH_DATA, vaddr, el.text_va - 0x1000, SL_EFORMAT, "sorted");
        /* huge memsz: one segment, and two segments far apart */
        MUT(PH_DATA, memsz, is64 ? 1ull << 40 : 0x80000000ull, SL_ERANGE, "1 GiB");
        MUT(PH_DATA, memsz, SL_ELF_MAX_SPAN, SL_ERANGE, "1 GiB");
        MUT(PH_DATA, vaddr, el.data_va + 0x40000000, SL_ERANGE, "1 GiB");
        /* vaddr + memsz past the address space */
        MUT(PH_DATA, vaddr, vmax & ~0xFFFull, SL_EFORMAT, "address space");
        if (is64) {
            MUT(PH_DATA, vaddr, 1ull << 47, SL_EFORMAT, "address space"); /* non-canonical */
        }
        /* alignment */
        MUT(PH_DATA, align, 0x1800, SL_EFORMAT, "p_align");
        MUT(PH_DATA, align, 1ull << 31, SL_EFORMAT, "p_align");
        MUT(PH_DATA, vaddr, el.data_va + 0x10, SL_EFORMAT, "congruent");
        MUT(PH_DATA, offset, DATA_OFF + 0x10, SL_EFORMAT, "congruent");
        /* no PT_LOAD at all */
        build(&el, &s);
        SET_PH(&el, PH_TEXT, type, PT_NULL);
        SET_PH(&el, PH_DATA, type, PT_NULL);
        SET_PH(&el, PH_DYN, type, PT_NULL);
        FAILS(&el, SL_EFORMAT, "no PT_LOAD");
        MUT(PH_STACK, type, PT_INTERP, SL_EUNSUPPORTED, "PT_INTERP");
        MUT(PH_STACK, type, PT_DYNAMIC, SL_EFORMAT, "more than one PT_DYNAMIC");
#undef MUT
        /* p_align 0, 1 and 2 MiB are all fine, and so is an empty PT_LOAD. */
        sl_elf_image img;
        sl_errbuf e;
        build(&el, &s);
        SET_PH(&el, PH_DATA, align, 0);
        SET_PH(&el, PH_TEXT, align, 0x200000);
        CHECK_EQ(parse(&el, &img, &e), 0);
        build(&el, &s);
        ph empty = {PT_LOAD, PF_R, 0, 0, 0, 0, 0x1000};
        ph_put(&el, PH_STACK, &empty);
        CHECK_EQ(parse(&el, &img, &e), 0);
        CHECK_EQ(img.n_segments, 2);
    }
}

/* An ELF64 image with n bss-only PT_LOAD pages (plus nothing else). */
static size_t build_many(uint8_t *b, unsigned n)
{
    Elf64_Ehdr h = {0};
    memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = ELFCLASS64;
    h.e_ident[EI_DATA] = ELFDATA2LSB;
    h.e_ident[EI_VERSION] = EV_CURRENT;
    h.e_type = ET_DYN;
    h.e_machine = EM_X86_64;
    h.e_version = EV_CURRENT;
    h.e_entry = 0x10000;
    h.e_phoff = sizeof h;
    h.e_ehsize = sizeof h;
    h.e_phentsize = sizeof(Elf64_Phdr);
    h.e_phnum = (uint16_t)n;
    memcpy(b, &h, sizeof h);
    for (unsigned i = 0; i < n; i++) {
        Elf64_Phdr p = {PT_LOAD, PF_R | PF_X, 0, 0x10000 + 0x2000ull * i, 0, 0, 0x1000, 0x1000};
        memcpy(b + sizeof h + i * sizeof p, &p, sizeof p);
    }
    return sizeof h + n * sizeof(Elf64_Phdr);
}

static void test_segment_count(void)
{
    uint8_t b[sizeof(Elf64_Ehdr) + 20 * sizeof(Elf64_Phdr)];
    sl_elf_image img;
    sl_errbuf e;
    size_t len = build_many(b, SL_ELF_MAX_SEGMENTS);
    REQUIRE(parse_exact(b, len, &img, &e) == 0);
    CHECK_EQ(img.n_segments, SL_ELF_MAX_SEGMENTS);
    CHECK_EQ(img.base_va, 0x10000);
    CHECK_EQ(img.span, 0x2000 * (SL_ELF_MAX_SEGMENTS - 1) + 0x1000);
    CHECK(!img.has_version);
    uint8_t *dst = malloc(img.span);
    REQUIRE(dst);
    memset(dst, 0x77, img.span);
    CHECK_EQ(sl_elf_load(&img, b, len, dst, img.span, 0x200000, &e), 0);
    CHECK_EQ(dst[0], 0);
    CHECK_EQ(dst[img.span - 1], 0);
    free(dst);
    len = build_many(b, SL_ELF_MAX_SEGMENTS + 1);
    CHECK_EQ(parse_exact(b, len, &img, &e), SL_ERANGE);
    CHECK(strstr(e.msg, "PT_LOAD") != NULL);
}

/* ---- dynamic section and relocations ---- */

static void test_bad_relocs(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        uint64_t w = is64 ? 8 : 4, base_va = 0x1000;

        /* unknown types are named */
        s.rel[2].type = is64 ? R_X86_64_64 : R_386_32;
        build(&el, &s);
        FAILS(&el, SL_EUNSUPPORTED, is64 ? "type 1 (R_X86_64_64)" : "type 1 (R_386_32)");
        s.rel[2].type = is64 ? R_X86_64_GLOB_DAT : R_386_GLOB_DAT;
        build(&el, &s);
        FAILS(&el, SL_EUNSUPPORTED, "GLOB_DAT");
        s.rel[2].type = is64 ? R_X86_64_IRELATIVE : R_386_IRELATIVE;
        build(&el, &s);
        FAILS(&el, SL_EUNSUPPORTED, "IRELATIVE");
        s.rel[2].type = 200;
        build(&el, &s);
        FAILS(&el, SL_EUNSUPPORTED, "type 200");

        /* targets: one byte short of room at the end, below base_va, far away; the last slot is fine */
        s = spec_default(is64, true);
        s.rel[1].off = base_va + SPAN - w + 1;
        build(&el, &s);
        FAILS(&el, SL_EFORMAT, "r_offset");
        s.rel[1].off = base_va - 1;
        build(&el, &s);
        FAILS(&el, SL_EFORMAT, "r_offset");
        s.rel[1].off = is64 ? UINT64_MAX - 3 : UINT32_MAX - 1;
        build(&el, &s);
        FAILS(&el, SL_EFORMAT, "r_offset");
        s.rel[1].off = base_va + SPAN - w; /* last slot in the span: accepted */
        s.rel[1].addend = 0;
        build(&el, &s);
        load_and_check(&el, 0x200000);
    }
}

static void test_bad_dynamic(void)
{
    for (int is64 = 0; is64 <= 1; is64++) {
        spec s = spec_default(is64, true);
        elf_t el;
        size_t rent = is64 ? 24 : 8;
        int64_t t_tab = is64 ? DT_RELA : DT_REL, t_sz = is64 ? DT_RELASZ : DT_RELSZ;
        int64_t t_ent = is64 ? DT_RELAENT : DT_RELENT;
#define MUT(stmt, code, needle) \
    build(&el, &s);             \
    stmt;                       \
    FAILS(&el, code, needle)
        MUT((dyn_put(&el, 4, DT_JMPREL, el.text_va + REL_AT), dyn_put(&el, 5, DT_PLTRELSZ, rent)), SL_EUNSUPPORTED,
            "DT_JMPREL");
        MUT(dyn_put(&el, 4, DT_RELR, el.text_va + REL_AT), SL_EUNSUPPORTED, "DT_RELR");
        MUT(dyn_put(&el, 4, DT_RELRSZ, 16), SL_EUNSUPPORTED, "DT_RELR");
        MUT(dyn_put(&el, 4, DT_NEEDED, 1), SL_EUNSUPPORTED, "DT_NEEDED");
        MUT((dyn_put(&el, 4, is64 ? DT_REL : DT_RELA, el.text_va), dyn_put(&el, 5, is64 ? DT_RELSZ : DT_RELASZ, 16)),
            SL_EUNSUPPORTED, is64 ? "DT_REL" : "DT_RELA");
        MUT(dyn_put(&el, 3, t_ent, rent + 4), SL_EFORMAT, "ENT");
        MUT(dyn_put(&el, 3, DT_DEBUG, 0), SL_EFORMAT, "ENT");       /* no entry size */
        MUT(dyn_put(&el, 1, DT_DEBUG, 0), SL_EFORMAT, "without");   /* size but no table */
        MUT(dyn_put(&el, 2, t_sz, s.n_rel * rent + 1), SL_EFORMAT, "multiple");
        MUT(dyn_put(&el, 4, t_sz, rent), SL_EFORMAT, "twice");
        /* table in the hole page, in bss (not file-backed), straddling text's end, past the address space */
        MUT(dyn_put(&el, 1, t_tab, el.text_va + 0x1000), SL_EFORMAT, "file-backed");
        MUT(dyn_put(&el, 1, t_tab, el.data_va + DATA_FILESZ), SL_EFORMAT, "file-backed");
        MUT(dyn_put(&el, 1, t_tab, el.text_va + TEXT_SZ - rent), SL_EFORMAT, "file-backed");
        MUT(dyn_put(&el, 1, t_tab, is64 ? UINT64_MAX - 8 : UINT32_MAX - 8), SL_EFORMAT, "file-backed");
        MUT(dyn_put(&el, 2, t_sz, is64 ? UINT64_MAX - rent + 1 : UINT32_MAX - rent + 1), SL_EFORMAT, "");
        /* PT_DYNAMIC itself outside the file-backed part, or a partial entry */
        MUT(SET_PH(&el, PH_DYN, vaddr, el.data_va + DATA_FILESZ), SL_EFORMAT, "PT_DYNAMIC");
        MUT(SET_PH(&el, PH_DYN, filesz, 0x100000), SL_EFORMAT, "PT_DYNAMIC");
        MUT(SET_PH(&el, PH_DYN, filesz, is64 ? 20 : 12), SL_EFORMAT, "PT_DYNAMIC");
#undef MUT
        /* DT_JMPREL with a zero size, and RELACOUNT-style extras, are harmless; a zero-size table too */
        sl_elf_image img;
        sl_errbuf e;
        build(&el, &s);
        dyn_put(&el, 4, DT_JMPREL, el.text_va);
        dyn_put(&el, 5, DT_PLTRELSZ, 0);
        dyn_put(&el, 6, is64 ? DT_RELACOUNT : DT_RELCOUNT, 5);
        CHECK_EQ(parse(&el, &img, &e), 0);
        build(&el, &s);
        dyn_put(&el, 2, t_sz, 0);
        CHECK_EQ(parse(&el, &img, &e), 0);
        CHECK_EQ(img.n_relocs, 0);
        (void)t_tab;
    }
}

/* ---- load-time argument checks ---- */

static void test_load_args(void)
{
    spec s = spec_default(false, true);
    elf_t el;
    build(&el, &s);
    sl_elf_image img;
    sl_errbuf e;
    REQUIRE(parse(&el, &img, &e) == 0);
    uint8_t *dst = malloc(SPAN);
    REQUIRE(dst);
    CHECK_EQ(sl_elf_load(&img, el.b, el.len, dst, SPAN - 1, 0x100000, &e), SL_EINVAL);
    CHECK_EQ(sl_elf_load(&img, el.b, el.len, dst, SPAN, 0x100800, &e), SL_EINVAL);
    CHECK(strstr(e.msg, "aligned") != NULL);
    CHECK_EQ(sl_elf_load(&img, el.b, el.len, dst, SPAN, 0xFFFFD000ull, &e), SL_EINVAL); /* crosses 4 GiB */
    CHECK_EQ(sl_elf_load(&img, el.b, el.len, NULL, SPAN, 0x100000, &e), SL_EINVAL);
    CHECK_EQ(sl_elf_load(NULL, el.b, el.len, dst, SPAN, 0x100000, &e), SL_EINVAL);
    /* A buffer other than the parsed one (shorter) is caught, not overread. */
    CHECK(sl_elf_load(&img, el.b, DATA_OFF + 0x10, dst, SPAN, 0x100000, &e) < 0);
    sl_elf_image bad = img;
    bad.seg[1].memsz = SPAN; /* beyond the span */
    CHECK_EQ(sl_elf_load(&bad, el.b, el.len, dst, SPAN, 0x100000, &e), SL_EINVAL);
    bad = img;
    bad.n_segments = SL_ELF_MAX_SEGMENTS + 1;
    CHECK_EQ(sl_elf_load(&bad, el.b, el.len, dst, SPAN, 0x100000, &e), SL_EINVAL);
    free(dst);
}

/* ---- gcc-built fixtures ---- */

static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("  missing fixture %s (run tests/fixtures/elf/build.sh)\n", path);
        return NULL;
    }
    uint8_t *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n)) != NULL &&
            fread(b, 1, (size_t)n, f) != (size_t)n) {
            free(b);
            b = NULL;
        }
        *len = n > 0 ? (size_t)n : 0;
    }
    fclose(f);
    return b;
}

#define FIXTURE_MAGIC 0x5EED5A4D1E7AB1E5ull

/* Finds the fixture's pointer table in the loaded image and checks that every
 * pointer, as a guest address, lands on the right bytes. */
static void check_fixture_table(const sl_elf_image *img, const uint8_t *dst, uint64_t load_addr)
{
    unsigned w = img->arch == SL_ARCH_AMD64 ? 8 : 4;
    size_t at = SIZE_MAX;
    for (size_t k = 0; k + 8 <= img->span; k += 4)
        if (sl_get64(dst + k) == FIXTURE_MAGIC) {
            at = k;
            break;
        }
    REQUIRE(at != SIZE_MAX);
    static const char *names[3] = {"alpha", "beta", "gamma"};
    for (unsigned i = 0; i < 4; i++) {
        const uint8_t *p = dst + at + 8 + i * w;
        uint64_t ga = w == 8 ? sl_get64(p) : sl_get32(p);
        REQUIRE(ga >= load_addr && ga - load_addr < img->span);
        uint64_t off = ga - load_addr;
        if (i < 3) {
            CHECK(off + strlen(names[i]) < img->span && strcmp((const char *)dst + off, names[i]) == 0);
        } else { /* entry pointer == relocated e_entry */
            CHECK_EQ(off, img->entry - img->base_va);
            CHECK_EQ(dst[off], 0xF4); /* hlt */
        }
    }
}

static const char *fixture_dir;

static void fixture(const char *name, unsigned arch, bool pie, uint64_t load_addr)
{
    size_t len = 0;
    uint8_t *b = read_file(fixture_dir, name, &len);
    REQUIRE(b);
    sl_elf_image img;
    sl_errbuf e;
    int rc = parse_exact(b, len, &img, &e);
    if (rc)
        printf("  %s: %s\n", name, e.msg);
    CHECK_EQ(rc, 0);
    CHECK_EQ(img.arch, arch);
    CHECK_EQ(img.pie, pie);
    CHECK(img.has_version);
    CHECK_EQ(img.version_major, SL_ABI_VERSION_MAJOR);
    CHECK_EQ(img.version_minor, SL_ABI_VERSION_MINOR);
    CHECK(img.n_segments >= 2);
    if (pie)
        CHECK(img.n_relocs >= 4); /* 3 names + entry */
    else
        CHECK_EQ(img.n_relocs, 0);
    if (!pie)
        load_addr = img.base_va;
    uint8_t *dst = NULL;
    if (rc == 0 && (dst = malloc(img.span)) != NULL) {
        memset(dst, 0xAA, img.span);
        rc = sl_elf_load(&img, b, len, dst, img.span, load_addr, &e);
        if (rc)
            printf("  %s load: %s\n", name, e.msg);
        CHECK_EQ(rc, 0);
        if (rc == 0)
            check_fixture_table(&img, dst, load_addr);
    }
    free(dst);
    free(b);
}

static void test_fixture_pie64(void) { fixture("pie64", SL_ARCH_AMD64, true, 0x40000000); }
static void test_fixture_pie32(void) { fixture("pie32", SL_ARCH_I686, true, 0x00800000); }
static void test_fixture_exec32(void) { fixture("exec32", SL_ARCH_I686, false, 0); }

int main(int argc, char **argv)
{
    RUN(test_parse_pie64);
    RUN(test_load_pie64);
    RUN(test_pie32);
    RUN(test_pie32_negative_delta);
    RUN(test_exec);
    RUN(test_no_version_note);
    RUN(test_note_align8);
    RUN(test_version_major_mismatch);
    RUN(test_version_minor_newer);
    RUN(test_note_malformed);
    RUN(test_truncated);
    RUN(test_bad_ident);
    RUN(test_bad_ehdr_fields);
    RUN(test_bad_segments);
    RUN(test_segment_count);
    RUN(test_bad_relocs);
    RUN(test_bad_dynamic);
    RUN(test_load_args);
    if (argc > 1) {
        fixture_dir = argv[1];
        RUN(test_fixture_pie64);
        RUN(test_fixture_pie32);
        RUN(test_fixture_exec32);
    }
    T_EXIT();
}

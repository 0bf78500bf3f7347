/* `sandlet snapshot inspect` (snapfile_inspect.h): what a snapshot file
 * holds, as load validated it, in text lines for people or one JSON object
 * for programs (schema: docs/cli.md, "JSON output"). Both report the same
 * facts in the same order: the header, the region records, then the address
 * map (snapfile_map.c). */
#include "snapfile_inspect.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "snapfile.h"
#include "snapshot_impl.h" /* the file codec reads and builds the struct */

void sl_inspect_emit(sl_line_fn line, void *user, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    line(user, buf);
}

void sl_jput(sl_jout *j, const char *fmt, ...)
{
    if (j->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(j->p ? j->p + j->len : NULL, j->p ? j->cap - j->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            j->oom = true;
            return;
        }
        if (j->p && (size_t)n < j->cap - j->len) {
            j->len += (size_t)n;
            return;
        }
        size_t ncap = j->cap ? j->cap * 2 : 4096;
        while (ncap - j->len <= (size_t)n)
            ncap *= 2;
        char *np = realloc(j->p, ncap);
        if (!np) {
            j->oom = true;
            return;
        }
        j->p = np;
        j->cap = ncap;
    }
}

void sl_jput_string(sl_jout *j, const char *str)
{
    sl_jput(j, "\"");
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\')
            sl_jput(j, "\\%c", *p);
        else if (*p < 0x20 || *p > 0x7E)
            sl_jput(j, "\\u%04x", *p);
        else
            sl_jput(j, "%c", *p);
    }
    sl_jput(j, "\"");
}

/* "rwx" with '-' for what is missing, from r/w/x bits 1, 2 and 4 (SL_PERM_*
 * and SL_RF_* agree on them). */
static void perm_str(uint32_t perm, char out[4])
{
    out[0] = perm & SL_PERM_READ ? 'r' : '-';
    out[1] = perm & SL_PERM_WRITE ? 'w' : '-';
    out[2] = perm & SL_PERM_EXEC ? 'x' : '-';
    out[3] = 0;
}
_Static_assert(SL_RF_READ == SL_PERM_READ && SL_RF_WRITE == SL_PERM_WRITE && SL_RF_EXEC == SL_PERM_EXEC,
               "region flags and permissions share their r/w/x bits");

static const char *region_kind(uint32_t k)
{
    switch (k) {
    case SL_RK_PEB: return "peb";
    case SL_RK_IMAGE: return "image";
    case SL_RK_INIT_DATA: return "init-data";
    case SL_RK_HEAP: return "heap";
    case SL_RK_KERNEL: return "kernel";
    default: return "?";
    }
}

/* ---------------- text ---------------- */

static void text_header(const sl_snapshot *s, const sl_snapfile_info *fi, sl_line_fn line, void *user)
{
    const sl_layout *l = &s->layout;
    char hex[2 * SL_HASH_LEN + 1], perm[4];
    sl_hash_hex(s->hash, hex);
    sl_inspect_emit(line, user, "format: sandlet snapshot file version %u", fi->version);
    sl_inspect_emit(line, user, "arch: %s", sl_snapfile_arch_name(s->arch));
    sl_inspect_emit(line, user, "file size: %" PRIu64 " bytes", fi->file_size);
    sl_inspect_emit(line, user, "identity: %s", hex);
    if (s->has_parent) {
        sl_hash_hex(s->parent, hex);
        sl_inspect_emit(line, user, "parent: %s (%" PRIu64 " of %" PRIu64 " pages kept at their offsets in its blob)",
                        hex, s->stats.pages_kept, s->visible_size / SL_PAGE_SIZE);
    } else {
        sl_inspect_emit(line, user, "parent: none");
    }
    if (fi->child) {
        char name[sizeof s->parent_name]; /* the file's bytes, shown safely on a terminal */
        sl_err_printable(s->parent_name, name, sizeof name);
        sl_inspect_emit(line, user,
                        "child file: %" PRIu64 " own pages at offset=%" PRIu64 ", %" PRIu64 " runs at offset=%" PRIu64
                        ", %" PRIu64 " index entries at offset=%" PRIu64 "; parent file name '%s'",
                        fi->own_size / SL_PAGE_SIZE, fi->blob_offset, s->n_runs, fi->runs_offset,
                        fi->index_size / SL_SNAPFILE_INDEX_ENTRY, fi->index_offset, name);
    }
    sl_inspect_emit(line, user,
                    "blob: offset=%" PRIu64 " size=%" PRIu64 " (guest-visible %" PRIu64 " + page tables %" PRIu64 ")%s",
                    fi->blob_offset, fi->blob_size, s->visible_size, s->pt_size,
                    fi->child ? ", in runs from its chain" : "");
    sl_inspect_emit(line, user, "regions: offset=%" PRIu64 " size=%" PRIu64 " (%u records)", fi->regions_offset,
                    fi->regions_size, s->n_regions);
    if (fi->child)
        sl_inspect_emit(line, user, "identity covers: the blob (from its chain) then the region records, as in the "
                                    "full file");
    else
        sl_inspect_emit(line, user,
                        "identity covers: offset=%" PRIu64 " size=%" PRIu64
                        " (blob then region records, to the end of the file)",
                        fi->blob_offset, fi->blob_size + fi->regions_size);
    sl_inspect_emit(line, user, "sregs: offset=%" PRIu64 " size=%" PRIu64, fi->sregs_offset, fi->sregs_size);
    perm_str(l->init_data_perm, perm);
    sl_inspect_emit(line, user,
                    "config: input=%" PRIu64 " output=%" PRIu64 " heap=%" PRIu64 " stack=%" PRIu64 " scratch=%" PRIu64
                    " init_data=%" PRIu64 " (%s)",
                    l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size, l->init_data_size,
                    l->init_data_size ? perm : "none");
    sl_inspect_emit(line, user, "scratch: gpa=0x%" PRIx64 " gva=0x%" PRIx64 " page tables at gpa=0x%" PRIx64,
                    l->scratch_gpa, l->scratch_gva, l->pt_gpa);
    if (l->image_size)
        sl_inspect_emit(line, user,
                        "placement: peb=0x%" PRIx64 " image=0x%" PRIx64 "+0x%" PRIx64 " init_data=0x%" PRIx64
                        " heap=0x%" PRIx64 " end=0x%" PRIx64,
                        l->peb_gpa, l->image_gpa, l->image_size, l->init_data_gpa, l->heap_gpa, l->visible_end);
    sl_inspect_emit(line, user, "next: %s at 0x%" PRIx64,
                    s->next_kind == SL_NEXT_CALL ? "call (dispatch)" : "initialise (entry)", s->next_addr);
    sl_inspect_emit(line, user, "stack top: 0x%" PRIx64, s->stack_top);
    sl_inspect_emit(line, user, "generation: %" PRIu64, s->generation);
    sl_inspect_emit(line, user,
                    "pages: %" PRIu64 " read-only, %" PRIu64 " cow, %" PRIu64 " page tables (%" PRIu64
                    " mapped virtual pages)",
                    s->stats.pages_ro, s->stats.pages_cow, s->stats.pages_pt, s->stats.leaves);
    sl_inspect_emit(line, user, "address spaces: %u (current %u)", s->n_roots, s->cur_root);
    if (s->load_info.valid)
        sl_inspect_emit(line, user, "load info: %s base_va=0x%" PRIx64 " load_addr=0x%" PRIx64 " entry=0x%" PRIx64,
                        s->load_info.pie ? "pie" : "fixed", s->load_info.base_va, s->load_info.load_addr,
                        s->load_info.entry);
}

static void text_regions(const sl_snapshot *s, sl_line_fn line, void *user)
{
    for (unsigned i = 0; i < s->n_regions; i++) {
        const sl_region *r = &s->regions[i];
        char perm[4];
        perm_str(r->flags, perm);
        sl_inspect_emit(line, user, "region %u: %s gpa=0x%" PRIx64 " gva=0x%" PRIx64 " size=0x%" PRIx64 " %s%s", i,
                        region_kind(r->kind), r->gpa, r->gva, r->size, perm, r->flags & SL_RF_USER ? " user" : "");
    }
}

/* ---------------- JSON ---------------- */

/* Addresses are hex strings (64-bit values that double-based readers would
 * round), sizes and counts plain numbers. */
static void json_header(const sl_snapshot *s, const sl_snapfile_info *fi, sl_jout *j)
{
    const sl_layout *l = &s->layout;
    char hex[2 * SL_HASH_LEN + 1], perm[4];
    sl_hash_hex(s->hash, hex);
    sl_jput(j, "{\"format_version\":%u,\"arch\":\"%s\",\"file_size\":%" PRIu64 ",\"identity\":\"%s\"",
            fi->version, sl_snapfile_arch_name(s->arch), fi->file_size, hex);
    if (s->has_parent) {
        sl_hash_hex(s->parent, hex);
        sl_jput(j, ",\"parent\":{\"identity\":\"%s\",\"pages_kept\":%" PRIu64 "}", hex, s->stats.pages_kept);
    } else {
        sl_jput(j, ",\"parent\":null");
    }
    if (fi->child) {
        sl_jput(j,
                ",\"child\":{\"own_size\":%" PRIu64 ",\"runs\":{\"offset\":%" PRIu64 ",\"count\":%" PRIu64
                "},\"index\":{\"offset\":%" PRIu64 ",\"entries\":%" PRIu64 "},\"parent_name\":",
                fi->own_size, fi->runs_offset, s->n_runs, fi->index_offset, fi->index_size / SL_SNAPFILE_INDEX_ENTRY);
        sl_jput_string(j, s->parent_name);
        sl_jput(j, "}");
    } else {
        sl_jput(j, ",\"child\":null");
    }
    sl_jput(j,
            ",\"blob\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"visible_size\":%" PRIu64
            ",\"page_table_size\":%" PRIu64 "}",
            fi->blob_offset, fi->blob_size, s->visible_size, s->pt_size);
    sl_jput(j, ",\"region_records\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"count\":%u}", fi->regions_offset,
            fi->regions_size, s->n_regions);
    if (fi->child)
        sl_jput(j, ",\"identity_covers\":null");
    else
        sl_jput(j, ",\"identity_covers\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 "}", fi->blob_offset,
                fi->blob_size + fi->regions_size);
    sl_jput(j, ",\"sregs\":{\"offset\":%" PRIu64 ",\"size\":%" PRIu64 "}", fi->sregs_offset, fi->sregs_size);
    sl_jput(j,
            ",\"config\":{\"input_size\":%" PRIu64 ",\"output_size\":%" PRIu64 ",\"heap_size\":%" PRIu64
            ",\"stack_size\":%" PRIu64 ",\"scratch_size\":%" PRIu64 ",\"init_data_size\":%" PRIu64,
            l->input_size, l->output_size, l->heap_size, l->stack_size, l->scratch_size, l->init_data_size);
    perm_str(l->init_data_perm, perm);
    if (l->init_data_size)
        sl_jput(j, ",\"init_data_perm\":\"%s\"", perm);
    else
        sl_jput(j, ",\"init_data_perm\":null");
    sl_jput(j, "},\"scratch\":{\"gpa\":\"0x%" PRIx64 "\",\"gva\":\"0x%" PRIx64 "\",\"page_tables_gpa\":\"0x%" PRIx64 "\"}",
            l->scratch_gpa, l->scratch_gva, l->pt_gpa);
    if (l->image_size)
        sl_jput(j,
                ",\"placement\":{\"peb\":\"0x%" PRIx64 "\",\"image\":\"0x%" PRIx64 "\",\"image_size\":%" PRIu64
                ",\"init_data\":\"0x%" PRIx64 "\",\"heap\":\"0x%" PRIx64 "\",\"end\":\"0x%" PRIx64 "\"}",
                l->peb_gpa, l->image_gpa, l->image_size, l->init_data_gpa, l->heap_gpa, l->visible_end);
    else
        sl_jput(j, ",\"placement\":null");
    sl_jput(j, ",\"next\":{\"kind\":\"%s\",\"address\":\"0x%" PRIx64 "\"},\"stack_top\":\"0x%" PRIx64 "\"",
            s->next_kind == SL_NEXT_CALL ? "call" : "initialise", s->next_addr, s->stack_top);
    sl_jput(j, ",\"generation\":%" PRIu64, s->generation);
    sl_jput(j,
            ",\"pages\":{\"read_only\":%" PRIu64 ",\"cow\":%" PRIu64 ",\"page_tables\":%" PRIu64
            ",\"mapped_virtual\":%" PRIu64 "}",
            s->stats.pages_ro, s->stats.pages_cow, s->stats.pages_pt, s->stats.leaves);
    sl_jput(j, ",\"address_spaces\":%u,\"current_space\":%u", s->n_roots, s->cur_root);
    if (s->load_info.valid)
        sl_jput(j,
                ",\"load_info\":{\"pie\":%s,\"base_va\":\"0x%" PRIx64 "\",\"load_addr\":\"0x%" PRIx64
                "\",\"entry\":\"0x%" PRIx64 "\"}",
                s->load_info.pie ? "true" : "false", s->load_info.base_va, s->load_info.load_addr,
                s->load_info.entry);
    else
        sl_jput(j, ",\"load_info\":null");
}

static void json_regions(const sl_snapshot *s, sl_jout *j)
{
    sl_jput(j, ",\"regions\":[");
    for (unsigned i = 0; i < s->n_regions; i++) {
        const sl_region *r = &s->regions[i];
        char perm[4];
        perm_str(r->flags, perm);
        sl_jput(j,
                "%s{\"index\":%u,\"kind\":\"%s\",\"gpa\":\"0x%" PRIx64 "\",\"gva\":\"0x%" PRIx64
                "\",\"size\":%" PRIu64 ",\"perm\":\"%s\",\"user\":%s}",
                i ? "," : "", i, region_kind(r->kind), r->gpa, r->gva, r->size, perm,
                r->flags & SL_RF_USER ? "true" : "false");
    }
    sl_jput(j, "]");
}

/* ---------------- the report ---------------- */

/* A child's chain, for the address map: its parents found as load finds
 * them. Without them (missing, another file, a loop, too deep) the report
 * says why and shows no map: the header and sections need no chain. */
static int load_for_report(int fd, const char *path, sl_snapshot **s, sl_snapfile_info *fi, char *why, size_t len,
                           sl_errbuf *e)
{
    sl_snapfile_chain chain = {0};
    int rc = sl_snapfile_load_chained(s, fd, path, 0, &chain, fi, e);
    if (rc == 0)
        return 0;
    snprintf(why, len, "%s", e->msg);
    sl_errbuf alone;
    if (sl_snapfile_load_chained(s, fd, path, 0, NULL, fi, &alone) != 0)
        return rc;
    if (!fi->child) { /* the file itself failed, not its chain */
        sl_snapshot_free(*s);
        *s = NULL;
        return rc;
    }
    return 0;
}

/* Loads the file on fd (named path, or NULL) and reports it as text lines,
 * or as JSON into json when that is not NULL. */
static int inspect(int fd, const char *path, sl_line_fn line, void *user, sl_jout *json, sl_errbuf *e)
{
    sl_snapshot *s;
    sl_snapfile_info fi;
    char why[SL_ERRMSG_MAX] = "";
    int rc = load_for_report(fd, path, &s, &fi, why, sizeof why, e);
    if (rc)
        return rc;
    if (json) {
        json_header(s, &fi, json);
        json_regions(s, json);
    } else {
        text_header(s, &fi, line, user);
        text_regions(s, line, user);
    }
    if (s->mem) {
        sl_inspect_map(s, line, user, json);
    } else if (json) {
        sl_jput(json, ",\"map_unavailable\":");
        sl_jput_string(json, why);
    } else {
        sl_inspect_emit(line, user, "map: unavailable: %s", why);
    }
    if (json)
        sl_jput(json, "}");
    sl_snapshot_free(s);
    return json && json->oom ? sl_err(e, SL_ENOMEM, "snapshot inspect: out of memory") : 0;
}

int sl_snapfile_inspect_fd(int fd, const char *path, sl_line_fn line, void *user, sl_errbuf *e)
{
    return inspect(fd, path, line, user, NULL, e);
}

int sl_snapfile_inspect_json_fd(int fd, const char *path, char **json, sl_errbuf *e)
{
    sl_jout j = {0};
    int rc = inspect(fd, path, NULL, NULL, &j, e);
    if (rc)
        free(j.p);
    else
        *json = j.p;
    return rc;
}

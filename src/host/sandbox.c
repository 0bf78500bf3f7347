/* The sandbox's lifecycle: sandlet.h's sl_sandbox_new_* build a sandbox on a
 * snapshot (one made from an ELF, or any other), sl_sandbox_init runs the
 * guest's init, the setters configure it between calls, and
 * sl_sandbox_info_get reports on it. Calls, host calls, snapshots and
 * restores live beside this file (sandbox.h lists them). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bookkeeping.h"
#include "regfile.h"
#include "sandbox.h"
#include "snapfile.h"

int sl_sb_poison(sl_sandbox *sb, int code)
{
    sb->status = SL_STATUS_POISONED;
    return code;
}

int sl_sb_file_changed(sl_sandbox *sb, const sl_snapshot *snap, int rc)
{
    if (snap != sb->snap)
        return rc;
    /* The tables in its scratch may have come from the changed file. */
    sl_mem_forget_tables(sb->mem);
    return sl_sb_poison(sb, rc);
}

static void default_print(void *user, int level, const char *msg, size_t len)
{
    (void)user;
    if (level == SL_LOG_PRINT)
        fprintf(stderr, "[guest] %.*s\n", (int)len, msg);
    else
        fprintf(stderr, "[guest log %d] %.*s\n", level, (int)len, msg);
}

static void default_write(void *user, int fd, const void *buf, size_t len)
{
    (void)user;
    fflush(fd == 1 ? stdout : stderr);
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the host's stream is gone: the guest's bytes go nowhere */
        p += n;
        len -= (size_t)n;
    }
}

static long default_read(void *user, void *buf, size_t cap)
{
    (void)user;
    (void)buf;
    (void)cap;
    return 0;
}

static int sandbox_create(sl_sandbox **out, sl_snapshot *snap, char *err, size_t errlen)
{
    *out = NULL;
    sl_sandbox *sb = calloc(1, sizeof *sb);
    int rc;
    if (!sb) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return SL_ENOMEM;
    }
    sb->arch = sl_snapshot_arch(snap);
    sb->print = default_print;
    sb->read = default_read;
    sb->write = default_write;
    if (getrandom(sb->rng_key, sizeof sb->rng_key, 0) != (ssize_t)sizeof sb->rng_key) {
        rc = sl_err(&sb->err, SL_EHYPERVISOR, "getrandom failed: %s", strerror(errno));
        goto fail;
    }
    if ((rc = sl_vcpu_open(&sb->vcpu, sb->arch, &sb->err)) || (rc = sl_mem_create(&sb->mem, snap, &sb->err)))
        goto fail;
    sb->dirty_tmp = calloc(sl_mem_dirty_words(sb->mem), sizeof(uint64_t));
    if (!sb->dirty_tmp) {
        rc = sl_err(&sb->err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    const sl_layout *l = &sb->mem->layout;
    if ((rc = sl_vcpu_map(sb->vcpu, SLOT_SCRATCH, l->scratch_gpa, sb->mem->scratch, l->scratch_size,
                          SL_VMEM_DIRTY_LOG, &sb->err)) ||
        (rc = sl_sb_restore_raw(sb, snap)))
        goto fail;
    *out = sb;
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", sb->err.msg);
    sl_sandbox_free(sb);
    return rc;
}

int sl_sandbox_new_from_elf(sl_sandbox **out, const void *elf, size_t len, const sl_config *cfg, char *err,
                            size_t errlen)
{
    sl_errbuf e;
    sl_snapshot *snap;
    *out = NULL;
    int rc = sl_snapshot_from_binary(&snap, elf, len, cfg, &e);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", e.msg);
        return rc;
    }
    rc = sandbox_create(out, snap, err, errlen);
    if (rc == 0)
        (*out)->snap_from_elf = true;
    sl_snapshot_free(snap); /* the sandbox holds its own reference */
    return rc;
}

int sl_sandbox_new_from_file(sl_sandbox **out, const char *path, const sl_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    sl_errbuf e;
    int fd = sl_open_regular(path, "guest ELF", &e);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        if (fd >= 0)
            close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s", fd < 0 ? e.msg : "out of memory");
        return fd < 0 ? fd : SL_ENOMEM;
    }
    struct stat st;
    uint8_t *buf = NULL;
    int rc = SL_EIO;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= (1ull << 30) &&
        (buf = malloc((size_t)st.st_size)) && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size)
        rc = sl_sandbox_new_from_elf(out, buf, (size_t)st.st_size, cfg, err, errlen);
    else if (err && errlen)
        snprintf(err, errlen, "%s: cannot read (empty, larger than 1 GiB, or an I/O error)", path);
    free(buf);
    fclose(f);
    return rc;
}

int sl_sandbox_new_from_snapshot(sl_sandbox **out, sl_snapshot *snap, char *err, size_t errlen)
{
    int rc = sandbox_create(out, snap, err, errlen);
    if (rc || (*out)->status != SL_STATUS_READY)
        return rc;
    if ((rc = sl_sb_load_signatures(*out))) {
        if (err && errlen)
            snprintf(err, errlen, "%s", (*out)->err.msg);
        sl_sandbox_free(*out);
        *out = NULL;
        return rc;
    }
    sl_sb_table_is_for(*out, sl_snapshot_hash(snap));
    return 0;
}

void sl_sandbox_free(sl_sandbox *sb)
{
    if (!sb)
        return;
    sl_vcpu_free(sb->vcpu);
    sl_mem_free(sb->mem);
    sl_snapshot_free(sb->snap);
    sl_sb_free_funcs(sb->host, sb->n_host);
    sl_sb_free_funcs(sb->guest, sb->n_guest);
    free(sb->ret_buf);
    free(sb->dirty_tmp);
    free(sb->read_buf);
    free(sb->exec_text);
    free(sb);
}

const char *sl_sandbox_errmsg(const sl_sandbox *sb) { return sb->err.msg; }
int sl_sandbox_status(const sl_sandbox *sb) { return sb->status; }
uint64_t sl_sandbox_generation(const sl_sandbox *sb) { return sb->generation; }
void sl_sandbox_set_timeout(sl_sandbox *sb, uint64_t ms) { sb->timeout_ms = ms; }
void sl_sandbox_kill(sl_sandbox *sb) { sl_vcpu_cancel(sb->vcpu); }

void sl_sandbox_set_print(sl_sandbox *sb, sl_print_fn fn, void *user)
{
    sb->print = fn ? fn : default_print;
    sb->print_user = user;
}

void sl_sandbox_set_stdio(sl_sandbox *sb, sl_read_fn read, sl_write_fn write, void *user)
{
    sb->read = read ? read : default_read;
    sb->write = write ? write : default_write;
    sb->stdio_user = user;
}

int sl_sandbox_set_args(sl_sandbox *sb, size_t argc, const char *const *argv, size_t envc, const char *const *envp)
{
    if (sb->status != SL_STATUS_NEW)
        return sl_err(&sb->err, SL_ESTATE, "arguments are set before init");
    if ((argc && !argv) || (envc && !envp))
        return sl_err(&sb->err, SL_EINVAL, "NULL argument or environment array");
    if (argc + envc > 4096 || argc + envc < argc)
        return sl_err(&sb->err, SL_ERANGE, "more than 4096 arguments and environment strings");
    size_t len = 0;
    for (size_t i = 0; i < argc + envc; i++) {
        const char *a = i < argc ? argv[i] : envp[i - argc];
        if (!a)
            return sl_err(&sb->err, SL_EINVAL, "%s %zu is NULL", i < argc ? "argument" : "environment string",
                          i < argc ? i : i - argc);
        len += strlen(a) + 1;
    }
    /* the EXEC message must fit the input buffer with its framing */
    if (len + 256 > sb->mem->layout.input_size)
        return sl_err(&sb->err, SL_ERANGE, "arguments and environment (%zu bytes) do not fit the %llu-byte input buffer",
                      len, (unsigned long long)sb->mem->layout.input_size);
    char *t = malloc(len ? len : 1), *p = t;
    if (!t)
        return sl_err(&sb->err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < argc + envc; i++) {
        const char *a = i < argc ? argv[i] : envp[i - argc];
        size_t n = strlen(a) + 1;
        memcpy(p, a, n);
        p += n;
    }
    free(sb->exec_text);
    sb->exec_text = t;
    sb->exec_len = len;
    sb->exec_argc = argc;
    return 0;
}

int sl_sandbox_init(sl_sandbox *sb)
{
    sl_msg res;
    int rc = sl_sb_start(sb, &res);
    if (rc == RUN_EXITED && sb->exit.signal)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABORT, "guest ended with signal %d during init (abort() "
                                 "sends SIGABRT, 6)", sb->exit.signal));
    if (rc == RUN_EXITED)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABORT,
                                 "guest exited with status %d during init (a program with main() runs with "
                                 "sl_sandbox_run or `sandlet run`)",
                                 sb->exit.exit_status));
    if (rc)
        return rc;
    if (res.status)
        return sl_sb_poison(sb, sl_sb_status_error(sb, &res));
    sb->dispatch = sl_bk_dispatch(sb->mem);
    sb->stack_top = sl_bk_stack_top(sb->mem);
    if (!sb->dispatch || !sb->stack_top)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "guest init did not report its dispatch entry and stack"));
    sb->status = SL_STATUS_READY;
    return sl_sb_load_signatures(sb);
}

int sl_run_file(const char *path, const sl_run_opts *o, sl_run_result *res, char *err, size_t errlen)
{
    static const sl_run_opts none;
    if (!o)
        o = &none;
    sl_config cfg = {.scratch_size = SL_RUN_DEFAULT_SCRATCH};
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, path, o->cfg ? o->cfg : &cfg, err, errlen);
    if (rc)
        return rc;
    sl_sandbox_set_stdio(sb, o->read, o->write, o->user);
    sl_sandbox_set_timeout(sb, o->timeout_ms);
    if (!(rc = sl_sandbox_set_args(sb, o->argc, o->argv, o->envc, o->envp)))
        rc = sl_sandbox_run(sb, res);
    if (rc && err && errlen)
        snprintf(err, errlen, "%s", sl_sandbox_errmsg(sb));
    sl_sandbox_free(sb);
    return rc;
}

int sl_sandbox_info_get(sl_sandbox *sb, sl_sandbox_info *info)
{
    memset(info, 0, sizeof *info);
    const sl_layout *l = &sb->mem->layout;
    int rc = sl_vcpu_dirty_log(sb->vcpu, SLOT_SCRATCH, sb->dirty_tmp, &sb->err);
    if (rc)
        return rc;
    sl_mem_merge_dirty(sb->mem, sb->dirty_tmp);
    info->arch = sb->arch;
    info->backend = sl_vcpu_backend_name(sb->vcpu);
    info->scratch_size = l->scratch_size;
    info->heap_size = l->heap_size;
    info->input_size = l->input_size;
    info->output_size = l->output_size;
    info->stack_size = l->stack_size;
    info->snapshot_memory = sl_snapshot_memory_size(sb->snap);
    info->dirty_pages = sl_mem_dirty_pages(sb->mem);
    info->resident_pages = sl_mem_resident_pages(sb->mem);
    uint64_t base = l->pt_gpa + sl_snapshot_page_table_size(sb->snap), cur = sl_bk_alloc_cursor(sb->mem);
    info->scratch_pages_used = cur > base && cur <= l->bk_gpa ? (cur - base) / SL_PAGE_SIZE : 0;
    info->generation = sb->generation;
    info->status = sb->status;
    sl_vcpu_stats now;
    sl_vcpu_get_stats(sb->vcpu, &now);
    info->exits = now.exits - sb->stats_base.exits;
    info->exits_io = now.exits_io - sb->stats_base.exits_io;
    info->exits_mmio = now.exits_mmio - sb->stats_base.exits_mmio;
    info->exits_other = now.exits_other - sb->stats_base.exits_other;
    info->ioctls = now.ioctls - sb->stats_base.ioctls;
    info->emulated = now.emulated - sb->stats_base.emulated;
    sl_bk_events ev;
    sl_bk_get_events(sb->mem, &ev);
    info->guest_faults = ev.faults;
    info->cow_copies = ev.cow;
    info->demand_pages = ev.demand;
    info->syscalls = ev.syscalls;
    return 0;
}

/* The call loop: a call is a CALL message pushed on the input stack, the
 * vCPU entered at the guest's dispatch entry, and the guest run until it
 * writes SL_PORT_DONE with its RESULT in the output buffer. Every other exit
 * on the way is a request (a host call, a print, a system call of the
 * program's that the guest kernel hands on) answered here or in the files
 * beside this one, or a failure that poisons the sandbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bookkeeping.h"
#include "kick.h"
#include "sandbox.h"
#include "snapfile.h"

void sl_sb_io_written(sl_sandbox *sb, bool output)
{
    const sl_layout *l = &sb->mem->layout;
    uint64_t base = l->scratch_gpa + (output ? l->input_size : 0), size = output ? l->output_size : l->input_size;
    uint64_t top = sl_get64(output ? sl_sb_output(sb) : sl_sb_input(sb));
    /* The stack header, and everything up to the top (bounded by the buffer). */
    sl_mem_mark_dirty(sb->mem, base, top < size - 8 ? top + 8 : size);
}

/* SL_PORT_DONE: the RESULT on top of the output stack, into *res. */
static int finished(sl_sandbox *sb, sl_msg *res, bool init)
{
    int rc = sl_abi_peek(sl_sb_output(sb), sb->mem->layout.output_size, res);
    if (init && rc == SL_ABI_E_EMPTY) { /* init may end without a RESULT */
        memset(res, 0, sizeof *res);
        res->kind = SL_MSG_RESULT;
        return 0;
    }
    if (rc || res->kind != SL_MSG_RESULT)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "malformed result message from the guest (decode %d, kind %u)",
                                       rc, rc ? 0u : (unsigned)res->kind));
    return 0;
}

/* The ports user code writes with a message in the output buffer: prints
 * and writes are passed on, an abort or an exception ends the call. */
static int guest_message(sl_sandbox *sb, const sl_exit *ex)
{
    sl_msg m;
    int rc = sl_abi_peek(sl_sb_output(sb), sb->mem->layout.output_size, &m);
    switch (ex->port) {
    case SL_PORT_PRINT:
    case SL_PORT_LOG:
        if (rc || (m.kind != SL_MSG_PRINT && m.kind != SL_MSG_LOG))
            return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "malformed print message from the guest"));
        sb->print(sb->print_user, m.kind == SL_MSG_PRINT ? SL_LOG_PRINT : (int)m.code, (const char *)m.text,
                  m.text_len);
        return RUN_MORE;
    case SL_PORT_WRITE:
        if (rc || m.kind != SL_MSG_WRITE || (m.code != 1 && m.code != 2))
            return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "malformed write message from the guest"));
        sb->write(sb->stdio_user, (int)m.code, m.text, m.text_len);
        return RUN_MORE;
    case SL_PORT_ABORT:
        if (rc || m.kind != SL_MSG_ABORT)
            return sl_sb_poison(sb, sl_err(&sb->err, SL_EABORT, "guest aborted with code %d", (int)ex->value));
        if (m.code == SL_ABI_ENOMEM)
            return sl_sb_poison(sb, sl_err(&sb->err, SL_ENOSCRATCH, "guest out of memory: %.*s", (int)m.text_len,
                                           (const char *)m.text));
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABORT, "guest aborted with code %lld: %.*s", (long long)m.code,
                                       (int)m.text_len, (const char *)m.text));
    default: /* SL_PORT_FAULT */
        if (rc || m.kind != SL_MSG_FAULT)
            return sl_sb_poison(sb, sl_err(&sb->err, SL_EFAULT, "guest exception (report malformed)"));
        return sl_sb_fault_error(sb, &m);
    }
}

/* An `out`: which port says who asks for what. */
static int port_out(sl_sandbox *sb, const sl_exit *ex, sl_msg *res, bool init)
{
    int rc;
    switch (ex->port) {
    case SL_PORT_DONE:
        return finished(sb, res, init);
    case SL_PORT_HOSTCALL:
        return (rc = sl_sb_host_call(sb)) ? rc : RUN_MORE;
    case SL_PORT_PRINT:
    case SL_PORT_LOG:
    case SL_PORT_ABORT:
    case SL_PORT_FAULT:
    case SL_PORT_WRITE:
        return guest_message(sb, ex);
    case SL_PORT_READ:
    case SL_PORT_CLOCK:
    case SL_PORT_PAGE:
    case SL_PORT_PF:
    case SL_PORT_EXIT:
        return sl_sb_kernel_port(sb, ex);
    default:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "guest wrote to unknown I/O port 0x%x", ex->port));
    }
}

/* Every other exit ends the call with an error. */
static int exit_error(sl_sandbox *sb, const sl_exit *ex, bool init)
{
    switch (ex->reason) {
    case SL_EXIT_IO_IN:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "guest read from I/O port 0x%x", ex->port));
    case SL_EXIT_HLT:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EFAULT, "guest halted at rip 0x%llx", (unsigned long long)ex->rip));
    case SL_EXIT_MEMFAULT:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EMEMACCESS, "%s", ex->detail));
    case SL_EXIT_SHUTDOWN:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EFAULT, "guest triple fault (shutdown)"));
    case SL_EXIT_CANCELLED:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_ECANCELLED, "call killed"));
    case SL_EXIT_TIMEOUT:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_ETIMEOUT, "%s exceeded its %llu ms timeout",
                                       init ? "the guest's init or run" : "call", (unsigned long long)sb->timeout_ms));
    default:
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EHYPERVISOR, "hypervisor: %s", ex->detail));
    }
}

/* Runs the guest until it finishes (SL_PORT_DONE), handling host calls,
 * prints and the program's system calls that reach the host; fills *res with
 * the RESULT message. RUN_EXITED when the program exited instead. Any
 * failure poisons. */
static int run_guest(sl_sandbox *sb, sl_msg *res, bool init)
{
    uint64_t deadline = sb->timeout_ms ? sl_kick_now_ns() + sb->timeout_ms * 1000000ull : 0;
    for (;;) {
        sl_exit ex;
        uint64_t left = 0;
        if (deadline) {
            uint64_t t = sl_kick_now_ns();
            left = t >= deadline ? 1 : deadline - t;
        }
        int rc = sl_vcpu_run(sb->vcpu, &ex, left, &sb->err);
        if (rc)
            return sl_sb_poison(sb, rc);
        rc = ex.reason == SL_EXIT_IO_OUT ? port_out(sb, &ex, res, init) : exit_error(sb, &ex, init);
        if (rc != RUN_MORE)
            return rc;
    }
}

/* run_guest between two checks of the snapshot's file (when it has one):
 * the guest never runs on a file that changed, and a call during which it
 * changed fails whatever the guest made of it (what a guest reads of a
 * truncated page is an EFAULT of KVM_RUN, or zeros after a host read met
 * it; a rewrite shows through). */
static int run_checked(sl_sandbox *sb, sl_msg *res, bool init)
{
    int rc = sl_snapfile_check(sb->snap, init ? "before init or a run" : "before a call", &sb->err);
    if (rc)
        return sl_sb_file_changed(sb, sb->snap, rc);
    sb->in_call = true;
    rc = run_guest(sb, res, init);
    sb->in_call = false;
    if (!sl_snapshot_file(sb->snap))
        return rc;
    /* What went wrong, if anything, is part of the story. */
    char during[SL_ERRMSG_MAX];
    if (rc && rc != RUN_EXITED)
        snprintf(during, sizeof during, "during %s, which failed: %s", init ? "init or a run" : "a call",
                 sb->err.msg);
    int changed = sl_snapfile_check(sb->snap, rc && rc != RUN_EXITED ? during
                                              : init ? "during init or a run" : "during a call",
                                    &sb->err);
    return changed ? sl_sb_file_changed(sb, sb->snap, changed) : rc;
}

static int enter(sl_sandbox *sb, uint64_t rip, uint64_t rsp, uint64_t kind)
{
    sl_regs r;
    memset(&r, 0, sizeof r);
    r.rip = rip;
    r.rsp = rsp;
    r.rdi = sl_layout_scratch_gva_of(&sb->mem->layout, sb->mem->layout.bk_gpa);
    r.rsi = kind;
    r.rflags = 2;
    int rc = sl_vcpu_set_regs(sb->vcpu, &r, &sb->err);
    return rc ? sl_sb_poison(sb, rc) : 0;
}

int sl_sb_raw_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_msg *res)
{
    const sl_layout *l = &sb->mem->layout;
    sl_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SL_MSG_CALL;
    m.name = (const uint8_t *)name;
    m.name_len = (uint32_t)strlen(name);
    m.count = (uint32_t)nargs;
    if (nargs > SL_ABI_MAX_VALUES || m.name_len > SL_ABI_MAX_NAME)
        return sl_err(&sb->err, SL_EINVAL, "too many arguments or name too long");
    for (size_t i = 0; i < nargs; i++)
        if (!sl_value_to_wire(&args[i], &m.values[i]))
            return sl_err(&sb->err, SL_EINVAL, "argument %zu has an invalid value", i + 1);
    sl_abi_reset(sl_sb_input(sb), l->input_size);
    sl_abi_reset(sl_sb_output(sb), l->output_size);
    int pushed = sl_abi_push(sl_sb_input(sb), l->input_size, &m);
    sl_sb_io_written(sb, false);
    sl_sb_io_written(sb, true);
    if (pushed)
        return sl_err(&sb->err, SL_ERANGE, "arguments do not fit the %llu-byte input buffer",
                      (unsigned long long)l->input_size);
    int rc = enter(sb, sb->dispatch, sb->stack_top, SL_ENTRY_CALL);
    if (rc)
        return rc;
    rc = run_checked(sb, res, false);
    if (rc == RUN_EXITED)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABORT, "guest exited during the call with status %d",
                                       sb->exit.exit_status));
    return rc;
}

/* Enters the guest kernel at its boot entry (the input stack holding the
 * EXEC message, if any) and runs until init is done or the program exits. */
int sl_sb_start(sl_sandbox *sb, sl_msg *res)
{
    if (sb->status != SL_STATUS_NEW)
        return sl_err(&sb->err, SL_ESTATE, "sandbox is already initialised");
    if (sl_snapshot_next_kind(sb->snap) != SL_NEXT_INITIALISE)
        return sl_err(&sb->err, SL_ESTATE, "snapshot has no init to run");
    const sl_layout *l = &sb->mem->layout;
    sl_abi_reset(sl_sb_input(sb), l->input_size);
    sl_abi_reset(sl_sb_output(sb), l->output_size);
    int rc = 0;
    if (sb->exec_text) {
        sl_msg m;
        sl_msg_init(&m, SL_MSG_EXEC);
        m.code = (int64_t)sb->exec_argc;
        m.text = (const uint8_t *)sb->exec_text;
        m.text_len = (uint32_t)sb->exec_len;
        rc = sl_abi_push(sl_sb_input(sb), l->input_size, &m);
    }
    sl_sb_io_written(sb, false);
    sl_sb_io_written(sb, true);
    if (rc)
        return sl_err(&sb->err, SL_ERANGE, "arguments do not fit the input buffer");
    if ((rc = enter(sb, sl_snapshot_next_addr(sb->snap), sl_bk_exc_stack_top(sb->mem), SL_ENTRY_INIT)))
        return rc;
    return run_checked(sb, res, true);
}

/* The RESULT's value into *ret, strings and bytes copied to the sandbox's
 * return buffer (valid until the next call). */
static int return_value(sl_sandbox *sb, const sl_wire_value *w, sl_value *ret)
{
    size_t need = 1;
    if (w->type == SL_T_STRING || w->type == SL_T_BYTES)
        need += w->v.buf.len;
    if (need > sb->ret_cap) {
        uint8_t *nb = realloc(sb->ret_buf, need);
        if (!nb)
            return sl_err(&sb->err, SL_ENOMEM, "out of memory");
        sb->ret_buf = nb;
        sb->ret_cap = need;
    }
    if (ret)
        sl_value_from_wire(w, ret, sb->ret_buf);
    return 0;
}

int sl_sandbox_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_value *ret)
{
    if (sb->status != SL_STATUS_READY)
        return sl_err(&sb->err, SL_ESTATE, "%s",
                      sb->status == SL_STATUS_NEW ? "sandbox is not initialised (call sl_sandbox_init)"
                                                  : "sandbox is poisoned by a failed call: restore a snapshot");
    const sl_func *f = sl_sb_find(sb->guest, sb->n_guest, (const uint8_t *)name, strlen(name));
    if (!f)
        return sl_err(&sb->err, SL_ENOTFOUND, "guest has no function '%s'", name);
    if (nargs != f->n)
        return sl_err(&sb->err, SL_ETYPE, "%s takes %zu argument%s, %zu given", name, f->n, f->n == 1 ? "" : "s",
                      nargs);
    for (size_t i = 0; i < nargs; i++)
        if (args[i].type != f->params[i])
            return sl_err(&sb->err, SL_ETYPE, "%s: argument %zu is %s, expected %s", name, i + 1,
                          sl_type_name(args[i].type), sl_type_name(f->params[i]));
    sl_msg res;
    int rc = sl_sb_raw_call(sb, name, args, nargs, &res);
    if (rc)
        return rc;
    if (res.status)
        return sl_sb_status_error(sb, &res);
    if (res.count != 1 || res.values[0].type != f->ret)
        return sl_sb_poison(sb, sl_err(&sb->err, SL_EABI, "%s returned %s, its signature says %s", name,
                                       res.count ? sl_type_name(res.values[0].type) : "nothing",
                                       sl_type_name(f->ret)));
    return return_value(sb, &res.values[0], ret);
}

int sl_sandbox_run(sl_sandbox *sb, sl_run_result *res)
{
    sl_msg m;
    memset(res, 0, sizeof *res);
    int rc = sl_sb_start(sb, &m);
    if (rc == RUN_EXITED) {
        *res = sb->exit;
        sl_sb_poison(sb, sl_err(&sb->err, SL_ESTATE, "the program has exited with status %d", res->exit_status));
        return 0;
    }
    if (rc)
        return rc;
    return sl_sb_poison(sb, sl_err(&sb->err, SL_ESTATE,
                                   "the guest finished init instead of exiting: it is a function-model guest "
                                   "(sandlet_main), use sl_sandbox_init and calls"));
}

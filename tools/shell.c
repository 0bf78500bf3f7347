/* `sandlet shell GUEST`: one command per input line, one result line each. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

extern const char EXIT_HELP[];

int shell_split(const char *line, char ***words, char **store, char *why, size_t whylen)
{
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    char **w = malloc((n / 2 + 2) * sizeof *w); /* at most one word per two chars, plus one */
    int count = 0;
    if (!buf || !w) {
        free(buf);
        free(w);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    const char *p = line;
    char *o = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            break;
        w[count++] = o;
        /* A word: runs of plain characters and "quoted" parts, until a blank. */
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            if (*p != '"') {
                *o++ = *p++;
                continue;
            }
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                *o++ = *p++;
            }
            if (*p != '"') {
                free(buf);
                free(w);
                snprintf(why, whylen, "unterminated \" quote");
                return -1;
            }
            p++;
        }
        *o++ = 0;
    }
    w[count] = NULL;
    *words = w;
    *store = buf;
    return count;
}

typedef struct tagged {
    char *tag;
    sl_snapshot *snap;
} tagged;

typedef struct shell {
    cli_guest g;
    tagged *tags;
    size_t ntags;
    int failed;          /* some command failed: exit 1 */
    int json;            /* --json: one JSON object per answer */
    int quiet;           /* --quiet: no progress line for save */
    const char *command; /* the command being run, for JSON answers */
} shell;

static const char SHELL_CMDS[] =
    "Commands (one per line; \"double quotes\" keep spaces, with \\\" and \\\\ inside):\n"
    "  call NAME [ARGS...]   call a guest function, print its result (void: ok)\n"
    "  snapshot TAG          take a snapshot and keep it under TAG\n"
    "  restore TAG           restore the snapshot TAG in place (also clears a failed call)\n"
    "  save TAG FILE         write snapshot TAG to a snapshot file\n"
    "  generation            the generation the guest sees\n"
    "  info                  backend, architecture, sizes, dirty pages since the last\n"
    "                        restore, scratch pages used, status\n"
    "  functions             the guest's functions and their signatures\n"
    "  help                  this list\n"
    "  quit                  leave (so does end of input)\n";

static void shell_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet shell [OPTIONS] [--json] GUEST\n"
               "Creates a sandbox from GUEST (a guest ELF or a snapshot file), runs its init and\n"
               "reads commands from stdin, a terminal or a pipe. Each command prints one line on\n"
               "stdout: its result, or \"error: <reason>\"; with --json, one JSON object\n"
               "(docs/cli.md). A prompt \"> \" is shown only when stdin is a terminal (on\n"
               "stderr when stdout is not one); on a terminal (stdin and stdout) lines can be\n"
               "edited and recalled (libedit), and the history is kept in ~/.sandlet_history\n"
               "(SANDLET_HISTORY=FILE elsewhere, empty: none). After a failed call the sandbox\n"
               "is poisoned until a restore.\n"
               "The exit status is 1 if any command failed, else 0.\n"
               "In the KVM lab the whole of stdin is read first, then the session runs.\n");
    out_printf(fd, "%s%s%s", SHELL_CMDS, OPT_HELP, EXIT_HELP);
}

static tagged *find_tag(shell *s, const char *tag)
{
    for (size_t i = 0; i < s->ntags; i++)
        if (strcmp(s->tags[i].tag, tag) == 0)
            return &s->tags[i];
    return NULL;
}

/* An error answer; code is the library's SL_E* or 0. */
static int fail_code(shell *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_code(shell *s, int code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (s->json) {
        /* "command" is always there: null for a line that did not split. */
        jw w = {0};
        jw_open(&w, NULL, '{');
        jw_bool(&w, "ok", 0);
        jw_str(&w, "command", s->command);
        jw_str(&w, "error", buf);
        if (code)
            jw_i64(&w, "code", code);
        else
            jw_null(&w, "code");
        jw_close(&w, '}');
        jw_emit(&w, 1);
    } else
        out_printf(1, "error: %s\n", buf);
    s->failed = 1;
    return -1;
}
#define fail(s, ...) fail_code(s, 0, __VA_ARGS__)

/* {"ok":true,"command":.. and the caller's members, then jw_emit. */
static void json_ok(shell *s, jw *w)
{
    jw_open(w, NULL, '{');
    jw_bool(w, "ok", 1);
    jw_str(w, "command", s->command);
}

static void json_done(jw *w)
{
    jw_close(w, '}');
    jw_emit(w, 1);
}

static const char *status_name(int st)
{
    switch (st) {
    case SL_STATUS_NEW: return "new";
    case SL_STATUS_READY: return "ready";
    case SL_STATUS_POISONED: return "poisoned";
    default: return "?";
    }
}

static const char *arch_name(unsigned arch)
{
    return arch == SL_ARCH_AMD64 ? "x86_64" : arch == SL_ARCH_I686 ? "i686" : "?";
}

/* JSON names architectures as `sandlet backend` and inspect do. */
static const char *arch_json(unsigned arch)
{
    return arch == SL_ARCH_AMD64 ? "amd64" : arch == SL_ARCH_I686 ? "i686" : "?";
}

static int do_snapshot(shell *s, const char *tag)
{
    sl_snapshot *snap;
    int rc = sl_sandbox_snapshot(s->g.sb, &snap);
    if (rc != 0)
        return fail_code(s, rc, "snapshot: %s", sl_sandbox_errmsg(s->g.sb));
    tagged *t = find_tag(s, tag);
    if (t) {
        sl_snapshot_free(t->snap);
    } else {
        tagged *nt = realloc(s->tags, (s->ntags + 1) * sizeof *nt);
        char *copy = strdup(tag);
        if (!nt || !copy) {
            free(copy);
            if (nt)
                s->tags = nt;
            sl_snapshot_free(snap);
            return fail_code(s, SL_ENOMEM, "out of memory");
        }
        s->tags = nt;
        t = &s->tags[s->ntags++];
        t->tag = copy;
    }
    t->snap = snap;
    char id[65];
    sl_snapshot_id_hex(snap, id);
    if (s->json) {
        jw w = {0};
        json_ok(s, &w);
        jw_str(&w, "tag", tag);
        jw_u64(&w, "generation", sl_snapshot_generation(snap));
        jw_str(&w, "id", id);
        json_done(&w);
    } else {
        out_printf(1, "snapshot %s generation=%" PRIu64 " id=%s\n", tag, sl_snapshot_generation(snap), id);
    }
    return 0;
}

static int do_restore(shell *s, const char *tag)
{
    tagged *t = find_tag(s, tag);
    if (!t)
        return fail(s, "no snapshot tagged '%s'", tag);
    int rc = sl_sandbox_restore(s->g.sb, t->snap);
    if (rc != 0)
        return fail_code(s, rc, "restore %s: %s", tag, sl_sandbox_errmsg(s->g.sb));
    if (s->json) {
        jw w = {0};
        json_ok(s, &w);
        jw_str(&w, "tag", tag);
        jw_u64(&w, "generation", sl_sandbox_generation(s->g.sb));
        json_done(&w);
    } else {
        out_printf(1, "restored %s generation=%" PRIu64 "\n", tag, sl_sandbox_generation(s->g.sb));
    }
    return 0;
}

static int do_save(shell *s, const char *tag, const char *file)
{
    tagged *t = find_tag(s, tag);
    if (!t)
        return fail(s, "no snapshot tagged '%s'", tag);
    if (!snapfile_available())
        return fail(s, "save: snapshot files are not supported by this build");
    char err[512] = "";
    lab_prepare_output(file);
    int rc = snapfile_save(t->snap, file, s->quiet, err, sizeof err);
    if (rc != 0)
        return fail_code(s, rc, "save %s: %s", file, err[0] ? err : sl_strerror(rc));
    if (s->json) {
        jw w = {0};
        json_ok(s, &w);
        jw_str(&w, "tag", tag);
        jw_str(&w, "file", file);
        json_done(&w);
    } else {
        out_printf(1, "saved %s to %s\n", tag, file);
    }
    return 0;
}

static int do_info(shell *s)
{
    sl_sandbox_info in;
    memset(&in, 0, sizeof in);
    int rc = sl_sandbox_info_get(s->g.sb, &in);
    if (rc != 0)
        return fail_code(s, rc, "info: %s", sl_sandbox_errmsg(s->g.sb));
    if (s->json) {
        jw w = {0};
        json_ok(s, &w);
        jw_str(&w, "backend", in.backend ? in.backend : "?");
        jw_str(&w, "arch", arch_json(in.arch));
        jw_u64(&w, "scratch_size", in.scratch_size);
        jw_u64(&w, "heap_size", in.heap_size);
        jw_u64(&w, "stack_size", in.stack_size);
        jw_u64(&w, "input_size", in.input_size);
        jw_u64(&w, "output_size", in.output_size);
        jw_u64(&w, "snapshot_memory", in.snapshot_memory);
        jw_u64(&w, "dirty_pages", in.dirty_pages);
        jw_u64(&w, "scratch_pages_used", in.scratch_pages_used);
        jw_u64(&w, "resident_pages", in.resident_pages);
        jw_u64(&w, "generation", in.generation);
        jw_str(&w, "status", status_name(in.status));
        jw_open(&w, "events", '{');
        jw_u64(&w, "exits", in.exits);
        jw_u64(&w, "exits_io", in.exits_io);
        jw_u64(&w, "exits_mmio", in.exits_mmio);
        jw_u64(&w, "exits_other", in.exits_other);
        jw_u64(&w, "ioctls", in.ioctls);
        jw_u64(&w, "guest_faults", in.guest_faults);
        jw_u64(&w, "cow_copies", in.cow_copies);
        jw_u64(&w, "demand_pages", in.demand_pages);
        jw_u64(&w, "syscalls", in.syscalls);
        jw_u64(&w, "emulated", in.emulated);
        jw_close(&w, '}');
        json_done(&w);
        return 0;
    }
    out_printf(1,
               "backend=%s arch=%s scratch=%" PRIu64 " heap=%" PRIu64 " stack=%" PRIu64 " input=%" PRIu64
               " output=%" PRIu64 " snapshot_memory=%" PRIu64 " dirty_pages=%" PRIu64
               " scratch_pages_used=%" PRIu64 " generation=%" PRIu64 " status=%s\n",
               in.backend ? in.backend : "?", arch_name(in.arch), in.scratch_size, in.heap_size,
               in.stack_size, in.input_size, in.output_size, in.snapshot_memory, in.dirty_pages,
               in.scratch_pages_used, in.generation, status_name(in.status));
    return 0;
}

/* One of the guest's functions, as sl_sandbox_function describes it. */
typedef struct fn_sig {
    const char *name;
    int ret;
    const int *params;
    size_t np;
} fn_sig;

static int function_at(shell *s, size_t i, fn_sig *f)
{
    return sl_sandbox_function(s->g.sb, i, &f->name, &f->ret, &f->params, &f->np);
}

static int do_functions_json(shell *s)
{
    size_t n = sl_sandbox_function_count(s->g.sb);
    jw w = {0};
    json_ok(s, &w);
    jw_open(&w, "functions", '[');
    for (size_t i = 0; i < n; i++) {
        fn_sig f;
        if (function_at(s, i, &f) != 0)
            continue;
        jw_open(&w, NULL, '{');
        jw_str(&w, "name", f.name);
        jw_open(&w, "params", '[');
        for (size_t k = 0; k < f.np; k++)
            jw_str(&w, NULL, sl_type_name(f.params[k]));
        jw_close(&w, ']');
        jw_str(&w, "returns", sl_type_name(f.ret));
        jw_close(&w, '}');
    }
    jw_close(&w, ']');
    json_done(&w);
    return 0;
}

static int do_functions(shell *s)
{
    if (s->json)
        return do_functions_json(s);
    size_t n = sl_sandbox_function_count(s->g.sb);
    size_t cap = 256, len = 0;
    char *line = malloc(cap);
    if (!line)
        return fail(s, "out of memory");
    line[0] = 0;
    for (size_t i = 0; i < n; i++) {
        fn_sig f;
        if (function_at(s, i, &f) != 0)
            continue;
        char sig[1024];
        signature_format(sig, sizeof sig, f.name, f.ret, f.params, f.np);
        size_t add = strlen(sig) + 2;
        if (len + add + 1 > cap) {
            char *nl = realloc(line, (len + add + 1) * 2);
            if (!nl) {
                free(line);
                return fail(s, "out of memory");
            }
            line = nl;
            cap = (len + add + 1) * 2;
        }
        len += (size_t)snprintf(line + len, cap - len, "%s%s", len ? "; " : "", sig);
    }
    out_printf(1, "%s\n", line);
    free(line);
    return 0;
}

/* Runs one line. Returns 1 to quit. */
static int shell_line(shell *s, const char *line)
{
    char **w, *store, why[128];
    int n = shell_split(line, &w, &store, why, sizeof why);
    if (n < 0) {
        s->command = NULL;
        fail(s, "%s", why);
        return 0;
    }
    int quit = 0;
    const char *c = n ? w[0] : "";
    s->command = n ? c : NULL;
#define ARITY(k, usage)                                                                            \
    if (n != (k)) {                                                                                \
        fail(s, "usage: %s", usage);                                                               \
        goto out;                                                                                  \
    }
    if (n == 0 || c[0] == '#') {
        /* blank or comment: no output */
    } else if (strcmp(c, "call") == 0) {
        if (n < 2) {
            fail(s, "usage: call NAME [ARGS...]");
            goto out;
        }
        if (s->json) {
            call_result r;
            guest_call(&s->g, w[1], n - 2, w + 2, &r);
            json_call_result(&r, "call", 0);
            if (r.exit != EXIT_OK)
                s->failed = 1;
        } else if (guest_call_text(&s->g, w[1], n - 2, w + 2, 1, "error: ", 1) != 0) {
            s->failed = 1;
        }
    } else if (strcmp(c, "snapshot") == 0) {
        ARITY(2, "snapshot TAG");
        do_snapshot(s, w[1]);
    } else if (strcmp(c, "restore") == 0) {
        ARITY(2, "restore TAG");
        do_restore(s, w[1]);
    } else if (strcmp(c, "save") == 0) {
        ARITY(3, "save TAG FILE");
        do_save(s, w[1], w[2]);
    } else if (strcmp(c, "generation") == 0) {
        ARITY(1, "generation");
        if (s->json) {
            jw j = {0};
            json_ok(s, &j);
            jw_u64(&j, "generation", sl_sandbox_generation(s->g.sb));
            json_done(&j);
        } else {
            out_printf(1, "%" PRIu64 "\n", sl_sandbox_generation(s->g.sb));
        }
    } else if (strcmp(c, "info") == 0) {
        ARITY(1, "info");
        do_info(s);
    } else if (strcmp(c, "functions") == 0) {
        ARITY(1, "functions");
        do_functions(s);
    } else if (strcmp(c, "help") == 0) {
        if (s->json) {
            jw j = {0};
            json_ok(s, &j);
            jw_str(&j, "text", SHELL_CMDS);
            json_done(&j);
        } else {
            out_printf(1, "%s", SHELL_CMDS);
        }
    } else if (strcmp(c, "quit") == 0 || strcmp(c, "exit") == 0) {
        quit = 1;
    } else {
        fail(s, "unknown command '%s' (try help)", c);
    }
#undef ARITY
out:
    free(w);
    free(store);
    return quit;
}

/* The session itself: returns 1 when a command failed, else 0. */
static int shell_session(shell *s)
{
    line_reader in;
    lines_open(&in);
    int eof = 0;
    for (;;) {
        size_t len;
        const char *line = lines_read(&in, &len);
        if (!line) {
            eof = 1;
            break;
        }
        if (memchr(line, 0, len)) {
            s->command = NULL;
            fail(s, "NUL byte in the input line");
            continue;
        }
        if (shell_line(s, line))
            break;
    }
    lines_close(&in, eof);
    for (size_t i = 0; i < s->ntags; i++) {
        sl_snapshot_free(s->tags[i].snap);
        free(s->tags[i].tag);
    }
    free(s->tags);
    return s->failed;
}

static int set_guest(void *user, char *arg)
{
    const char **guest = user;
    if (*guest) {
        cli_err("shell: one GUEST only (commands come from stdin), got '%s'", arg);
        return -1;
    }
    *guest = arg;
    return 0;
}

/* Options, the guest, the lab. Returns the exit status; *ran is set when
 * the session ran (here or in the lab) and answered for itself. */
static int shell_start(cli_opts *o, int argc, char **argv, int *ran)
{
    const char *guest = NULL;
    int rc = opt_scan(o, argc, argv, set_guest, &guest, shell_usage);
    if (rc >= 0)
        return rc;
    if (!guest) {
        cli_err("shell: GUEST is required");
        shell_usage(2);
        return EXIT_USAGE;
    }
    lab_req req;
    lab_req_guest(&req, guest, o);
    req.capture_stdin = 2;
    rc = lab_maybe_reexec(&req);
    if (rc >= 0) {
        *ran = lab_inner_ran;
        return rc;
    }
    shell s;
    memset(&s, 0, sizeof s);
    s.json = o->json;
    s.quiet = o->quiet;
    if ((rc = guest_open(&s.g, guest, o)) != 0)
        return rc;
    *ran = 1;
    rc = shell_session(&s) ? EXIT_FAIL : EXIT_OK;
    guest_close(&s.g);
    return rc;
}

int cmd_shell(int argc, char **argv)
{
    cli_opts o;
    memset(&o, 0, sizeof o);
    int ran = 0;
    int rc = shell_start(&o, argc, argv, &ran);
    if (o.json && rc != EXIT_OK && !ran && !o.help) {
        int code;
        const char *msg = cli_last_err(&code);
        json_error(NULL, NULL, msg, code, rc);
    }
    return rc;
}

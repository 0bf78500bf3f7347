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
    int failed; /* some command failed: exit 1 */
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
               "usage: sandlet shell [OPTIONS] GUEST\n"
               "Creates a sandbox from GUEST (a guest ELF or a snapshot file), runs its init and\n"
               "reads commands from stdin, a terminal or a pipe. Each command prints one line on\n"
               "stdout: its result, or \"error: <reason>\". A prompt \"> \" is shown only when\n"
               "stdin is a terminal. After a failed call the sandbox is poisoned until a restore.\n"
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

static int fail(shell *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(shell *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    out_printf(1, "error: %s\n", buf);
    s->failed = 1;
    return -1;
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

static int do_snapshot(shell *s, const char *tag)
{
    sl_snapshot *snap;
    if (sl_sandbox_snapshot(s->g.sb, &snap) != 0)
        return fail(s, "snapshot: %s", sl_sandbox_errmsg(s->g.sb));
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
            return fail(s, "out of memory");
        }
        s->tags = nt;
        t = &s->tags[s->ntags++];
        t->tag = copy;
    }
    t->snap = snap;
    char id[65];
    sl_snapshot_id_hex(snap, id);
    out_printf(1, "snapshot %s generation=%" PRIu64 " id=%s\n", tag, sl_snapshot_generation(snap), id);
    return 0;
}

static int do_restore(shell *s, const char *tag)
{
    tagged *t = find_tag(s, tag);
    if (!t)
        return fail(s, "no snapshot tagged '%s'", tag);
    if (sl_sandbox_restore(s->g.sb, t->snap) != 0)
        return fail(s, "restore %s: %s", tag, sl_sandbox_errmsg(s->g.sb));
    out_printf(1, "restored %s generation=%" PRIu64 "\n", tag, sl_sandbox_generation(s->g.sb));
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
    int rc = snapfile_save(t->snap, file, err, sizeof err);
    if (rc != 0)
        return fail(s, "save %s: %s", file, err[0] ? err : sl_strerror(rc));
    out_printf(1, "saved %s to %s\n", tag, file);
    return 0;
}

static int do_info(shell *s)
{
    sl_sandbox_info in;
    memset(&in, 0, sizeof in);
    if (sl_sandbox_info_get(s->g.sb, &in) != 0)
        return fail(s, "info: %s", sl_sandbox_errmsg(s->g.sb));
    out_printf(1,
               "backend=%s arch=%s scratch=%" PRIu64 " heap=%" PRIu64 " stack=%" PRIu64 " input=%" PRIu64
               " output=%" PRIu64 " snapshot_memory=%" PRIu64 " dirty_pages=%" PRIu64
               " scratch_pages_used=%" PRIu64 " generation=%" PRIu64 " status=%s\n",
               in.backend ? in.backend : "?", arch_name(in.arch), in.scratch_size, in.heap_size,
               in.stack_size, in.input_size, in.output_size, in.snapshot_memory, in.dirty_pages,
               in.scratch_pages_used, in.generation, status_name(in.status));
    return 0;
}

static int do_functions(shell *s)
{
    size_t n = sl_sandbox_function_count(s->g.sb);
    size_t cap = 256, len = 0;
    char *line = malloc(cap);
    if (!line)
        return fail(s, "out of memory");
    line[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        int ret;
        const int *params;
        size_t np;
        if (sl_sandbox_function(s->g.sb, i, &name, &ret, &params, &np) != 0)
            continue;
        char sig[1024];
        signature_format(sig, sizeof sig, name, ret, params, np);
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
        fail(s, "%s", why);
        return 0;
    }
    int quit = 0;
    const char *c = n ? w[0] : "";
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
        if (guest_call_text(&s->g, w[1], n - 2, w + 2, 1, "error: ", 1) != 0)
            s->failed = 1;
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
        out_printf(1, "%" PRIu64 "\n", sl_sandbox_generation(s->g.sb));
    } else if (strcmp(c, "info") == 0) {
        ARITY(1, "info");
        do_info(s);
    } else if (strcmp(c, "functions") == 0) {
        ARITY(1, "functions");
        do_functions(s);
    } else if (strcmp(c, "help") == 0) {
        out_printf(1, "%s", SHELL_CMDS);
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

int cmd_shell(int argc, char **argv)
{
    cli_opts o;
    memset(&o, 0, sizeof o);
    const char *guest = NULL;
    int opts_done = 0;
    for (int i = 1; i < argc; i++) {
        if (!opts_done && strcmp(argv[i], "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done) {
            int r = opt_take(&o, argc, argv, &i);
            if (r == EXIT_USAGE) {
                shell_usage(2);
                return EXIT_USAGE;
            }
            if (r == 1)
                continue;
        }
        if (guest) {
            cli_err("shell: one GUEST only (commands come from stdin), got '%s'", argv[i]);
            shell_usage(2);
            return EXIT_USAGE;
        }
        guest = argv[i];
    }
    if (o.help) {
        shell_usage(1);
        return EXIT_OK;
    }
    if (opt_finish(&o) != 0) {
        shell_usage(2);
        return EXIT_USAGE;
    }
    if (!guest) {
        cli_err("shell: GUEST is required");
        shell_usage(2);
        return EXIT_USAGE;
    }
    lab_req req;
    memset(&req, 0, sizeof req);
    req.adds[req.nadds++] = guest;
    if (o.init_data_path)
        req.adds[req.nadds++] = o.init_data_path;
    req.capture_stdin = 2;
    int rc = lab_maybe_reexec(&req);
    if (rc >= 0)
        return rc;

    shell s;
    memset(&s, 0, sizeof s);
    rc = guest_open(&s.g, guest, &o);
    if (rc != 0)
        return rc;
    int tty = isatty(0);
    char *line = NULL;
    size_t cap = 0;
    int eof = 0;
    for (;;) {
        if (tty)
            out_printf(1, "> ");
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            eof = 1;
            break;
        }
        if (memchr(line, 0, (size_t)len)) {
            fail(&s, "NUL byte in the input line");
            continue;
        }
        if (shell_line(&s, line))
            break;
    }
    if (tty && eof)
        out_printf(1, "\n");
    free(line);
    for (size_t i = 0; i < s.ntags; i++) {
        sl_snapshot_free(s.tags[i].snap);
        free(s.tags[i].tag);
    }
    free(s.tags);
    guest_close(&s.g);
    return s.failed ? EXIT_FAIL : EXIT_OK;
}

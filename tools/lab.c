/* Re-executing the CLI inside the KVM lab (scripts/kvm-lab, DESIGN.md §4)
 * when this machine has no usable /dev/kvm.
 *
 * The outer sandlet runs `kvm-lab --add <exe> --add <inputs> [--stdin F]
 * [--collect F] --env SANDLET_LAB_PROTOCOL=1 -- <exe> <same arguments>`, reads
 * the lab's merged output, splits it back into stdout and stderr (out.c) and
 * exits with the lab's status. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static int env_is(const char *name, const char *val)
{
    const char *e = getenv(name);
    return e && strcmp(e, val) == 0;
}

/* The architecture of the guest ELF or snapshot file at path, or 0 when it
 * is neither (missing, unreadable, something else: the inner run reports
 * that). Reads 20 bytes without blocking: only regular files get here. */
static unsigned file_arch(const char *path)
{
    uint8_t h[20];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, h, sizeof h);
    close(fd);
    if (n != (ssize_t)sizeof h)
        return 0;
    if (memcmp(h, "\x7f" "ELF", 4) == 0) {
        unsigned machine = h[18] | (unsigned)h[19] << 8; /* e_machine, little-endian */
        if (h[4] == 2 && machine == 62)
            return SL_ARCH_AMD64;
        if (h[4] == 1 && machine == 3)
            return SL_ARCH_I686;
        return 0;
    }
    if (memcmp(h, "SLSNAPF", 8) == 0) {
        unsigned a = h[16] | (unsigned)h[17] << 8 | (unsigned)h[18] << 16 | (unsigned)h[19] << 24;
        return a == SL_ARCH_AMD64 || a == SL_ARCH_I686 ? a : 0;
    }
    return 0;
}

const char *cli_backend(unsigned arch, char *why, size_t len)
{
    if (env_is("SANDLET_FORCE_LAB", "1")) {
        snprintf(why, len, "SANDLET_FORCE_LAB=1");
        return "lab";
    }
    return sl_backend_probe(arch, why, len);
}

static const char *arch_name(unsigned arch) { return arch == SL_ARCH_I686 ? "i686" : "x86-64"; }

static int self_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0 || (size_t)n >= len - 1)
        return -1;
    buf[n] = 0;
    return 0;
}

/* <directory of exe>/<rel> into buf; 0 when it is executable. */
static int lab_at(const char *exe, const char *rel, char *buf, size_t len)
{
    const char *slash = strrchr(exe, '/');
    int dirlen = slash ? (int)(slash - exe) : 0;
    int n = snprintf(buf, len, "%.*s/%s", dirlen, exe, rel);
    if (n < 0 || (size_t)n >= len || access(buf, X_OK) != 0)
        return -1;
    /* Shown to users (`sandlet backend`): without the "bin/.." detour. */
    char real[PATH_MAX];
    if (realpath(buf, real) && strlen(real) < len)
        memcpy(buf, real, strlen(real) + 1);
    return 0;
}

int lab_find(char *buf, size_t len)
{
    const char *env = getenv("SANDLET_KVM_LAB");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return access(buf, X_OK);
    }
    char exe[PATH_MAX];
    if (self_exe(exe, sizeof exe) != 0) {
        snprintf(buf, len, "%s", "");
        return -1;
    }
    /* A checkout's build/sandlet first, then an installed bin/sandlet
     * (mk/install.mk puts the script in $(PREFIX)/lib/sandlet). */
    if (lab_at(exe, "../scripts/kvm-lab", buf, len) == 0)
        return 0;
    return lab_at(exe, "../lib/sandlet/kvm-lab", buf, len);
}

static void backend_usage(int fd)
{
    out_printf(fd, "usage: sandlet backend [--json] [amd64|i686|FILE]\n"
                   "Prints where guests of that architecture (default amd64; FILE: a guest ELF or\n"
                   "snapshot file's) run on this machine: kvm (hardware KVM), pvm (PVM, x86-64\n"
                   "only) or lab (the KVM lab, QEMU), and on standard error why when lab, with the\n"
                   "kvm-lab script that would run. --json prints {\"arch\":..,\"backend\":..,\n"
                   "\"reason\":..,\"lab\":..} instead (docs/cli.md).\n");
}

int cmd_backend(int argc, char **argv)
{
    const char *what = NULL;
    int json = 0, nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            backend_usage(1);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            what = argv[i];
            nargs++;
        }
    }
    if (nargs > 1) {
        cli_err("backend: at most one argument");
        backend_usage(2);
        if (json) {
            int code;
            json_error(NULL, NULL, cli_last_err(&code), 0, EXIT_USAGE);
        }
        return EXIT_USAGE;
    }
    unsigned arch = SL_ARCH_AMD64;
    if (what) {
        if (strcmp(what, "amd64") == 0 || strcmp(what, "x86-64") == 0 || strcmp(what, "x86_64") == 0)
            arch = SL_ARCH_AMD64;
        else if (strcmp(what, "i686") == 0 || strcmp(what, "i386") == 0)
            arch = SL_ARCH_I686;
        else if (!(arch = file_arch(what))) {
            cli_err("backend: %s: not an architecture (amd64, i686), a guest ELF or a snapshot file", what);
            if (json) {
                int code;
                json_error(NULL, NULL, cli_last_err(&code), 0, EXIT_USAGE);
            }
            return EXIT_USAGE;
        }
    }
    char why[256] = "", lab[PATH_MAX + 64];
    const char *b = cli_backend(arch, why, sizeof why);
    int lab_ok = lab_find(lab, sizeof lab) == 0;
    int is_lab = strcmp(b, "lab") == 0;
    if (json) {
        jw w = {0};
        jw_open(&w, NULL, '{');
        jw_bool(&w, "ok", 1);
        jw_str(&w, "arch", arch == SL_ARCH_I686 ? "i686" : "amd64");
        jw_str(&w, "backend", b);
        jw_str(&w, "reason", is_lab && why[0] ? why : NULL);
        jw_str(&w, "lab", lab_ok ? lab : NULL);
        jw_close(&w, '}');
        jw_emit(&w, 1);
        return EXIT_OK;
    }
    out_printf(1, "%s\n", b);
    if (is_lab && why[0]) {
        if (lab_ok)
            out_printf(2, "sandlet: %s guests run in the KVM lab here: %s (lab: %s)\n", arch_name(arch), why, lab);
        else
            out_printf(2, "sandlet: %s guests run in the KVM lab here: %s (no kvm-lab script found%s%s; set "
                          "SANDLET_KVM_LAB)\n",
                       arch_name(arch), why, lab[0] ? " at " : "", lab);
    }
    return EXIT_OK;
}

/* Copies our stdin to a new temp file; returns its path (malloc'd) or NULL. */
#define LAB_MAX_STDIN (256u << 20)

static char *save_stdin(void)
{
    const char *tmp = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/sandlet-stdin.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
        return NULL;
    int fd = mkstemp(path);
    if (fd < 0) {
        cli_err("cannot create a temp file for stdin: %s", strerror(errno));
        free(path);
        return NULL;
    }
    char buf[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0 && (total += (size_t)n) > LAB_MAX_STDIN) {
            cli_err("standard input over %u MiB cannot go through the KVM lab (its VM holds it in memory)",
                    LAB_MAX_STDIN >> 20);
            goto fail;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_err("reading stdin: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            close(fd);
            return path;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                cli_err("writing %s: %s", path, strerror(errno));
                goto fail;
            }
            off += w;
        }
    }
fail:
    close(fd);
    unlink(path);
    free(path);
    return NULL;
}

/* The file of the last `save TAG FILE` line in a shell script (malloc'd), or
 * NULL. The lab can bring back only one file: warn when there are several. */
static char *scan_saves(const char *script)
{
    FILE *f = fopen(script, "r");
    if (!f)
        return NULL;
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    int distinct = 0;
    while (getline(&line, &cap, f) >= 0) {
        char **w, *store, why[64];
        int n = shell_split(line, &w, &store, why, sizeof why);
        if (n < 0)
            continue;
        if (n == 3 && strcmp(w[0], "save") == 0 && (!last || strcmp(last, w[2]) != 0)) {
            free(last);
            last = strdup(w[2]);
            distinct++;
        }
        free(w);
        free(store);
    }
    free(line);
    fclose(f);
    if (distinct > 1 && last)
        cli_err("the KVM lab brings back one file only: %s (the other saved files are lost)", last);
    return last;
}

int lab_inner_ran;

/* Runs argv (the lab), capturing its stdout; returns the exit code to use. */
static int run_lab(char **argv)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        cli_err("pipe: %s", strerror(errno));
        return EXIT_LAB;
    }
    /* ^C reaches kvm-lab (same process group), which stops QEMU and exits 130:
     * we wait for that instead of dying first. */
    struct sigaction ign, old_int, old_quit;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid < 0) {
        cli_err("fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return EXIT_LAB;
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        dprintf(2, "sandlet: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(EXIT_LAB);
    }
    close(pfd[1]);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb)
                break; /* keep what we have; the child still gets reaped */
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(pfd[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pfd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    out_demux(buf, len);
    free(buf);
    /* kvm-lab exits 125 for its own failures; the inner sandlet never does. */
    if (WIFEXITED(st) && WEXITSTATUS(st) != EXIT_LAB)
        lab_inner_ran = 1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return EXIT_LAB;
}

void lab_req_guest(lab_req *req, const char *guest, const cli_opts *o)
{
    memset(req, 0, sizeof *req);
    req->adds[req->nadds++] = guest;
    if (o->init_data_path)
        req->adds[req->nadds++] = o->init_data_path;
}

/* Whether the command goes to the lab: not from inside it, and only where
 * guests of its architecture cannot run. The guest's own architecture
 * decides (x86-64 runs on PVM, i686 does not), into *arch; an unreadable
 * guest is left to the native run to report. */
static int lab_wanted(const lab_req *req, unsigned *arch, char *why, size_t len)
{
    const char *in_lab = getenv("SANDLET_IN_LAB");
    if (in_lab && *in_lab)
        return 0;
    unsigned guest_arch = req->nadds ? file_arch(req->adds[0]) : 0;
    *arch = guest_arch ? guest_arch : SL_ARCH_AMD64;
    return strcmp(cli_backend(*arch, why, len), "lab") == 0;
}

/* The lab copies the files in: a FIFO or a device would hang the copy or
 * fill the disk. Checked before anything else, so that such a file gets the
 * same error wherever it was to run. Returns -1, or the exit code. */
static int lab_inputs_regular(const lab_req *req)
{
    for (size_t i = 0; i < req->nadds; i++) {
        struct stat st;
        if (stat(req->adds[i], &st) == 0 && !S_ISREG(st.st_mode)) {
            cli_err("%s: not a regular file", req->adds[i]);
            return EXIT_SETUP;
        }
    }
    return -1;
}

typedef struct lab_paths {
    char exe[PATH_MAX];      /* this executable, which the lab runs again */
    char lab[PATH_MAX + 64]; /* the kvm-lab script */
} lab_paths;

/* Finds both paths and announces the lab. Returns -1, or the exit code. */
static int lab_locate(unsigned arch, const char *why, lab_paths *p)
{
    if (env_is("SANDLET_NO_LAB", "1")) {
        cli_err("%s guests cannot run here (%s), and SANDLET_NO_LAB=1 forbids the KVM lab", arch_name(arch), why);
        return EXIT_SETUP;
    }
    if (self_exe(p->exe, sizeof p->exe) != 0) {
        cli_err("cannot locate this executable (/proc/self/exe) to re-run it in the KVM lab");
        return EXIT_LAB;
    }
    if (lab_find(p->lab, sizeof p->lab) != 0) {
        cli_err("%s guests cannot run here (%s) and the KVM lab %s is not executable (set SANDLET_KVM_LAB)",
                arch_name(arch), why, p->lab);
        return EXIT_LAB;
    }
    out_printf(2, "sandlet: %s guests cannot run here (%s); running in the KVM lab (QEMU), expect ~4 s "
                  "per command\n",
               arch_name(arch), why);
    return -1;
}

/* What travels besides the command line: our stdin in a temp file (*stdin_path)
 * when the command reads it, and the file to bring back (*collect):
 * req->collect, or a shell script's last `save`. Both malloc'd or NULL.
 * Returns 0, or -1 after printing why. */
static int lab_capture(const lab_req *req, char **stdin_path, char **collect)
{
    *stdin_path = *collect = NULL;
    if (req->capture_stdin) {
        if (isatty(0))
            out_printf(2, "sandlet: reading all of standard input first (end with Ctrl-D); it goes to the lab "
                          "after that\n");
        if (!(*stdin_path = save_stdin()))
            return -1;
        if (req->capture_stdin == 2) /* shell commands: `save TAG FILE` writes FILE */
            *collect = scan_saves(*stdin_path);
    }
    if (req->collect) {
        free(*collect);
        *collect = strdup(req->collect);
    }
    return 0;
}

/* The parent files of the child snapshot files among the inputs, which
 * the inner sandlet looks for where we would: into chain (malloc'd paths),
 * their number returned. */
#define LAB_CHAIN_FILES (2 * SL_CHAIN_MAX)
static size_t lab_chains(const lab_req *req, char **chain)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nadds; i++)
        n += lab_chain_files(req->adds[i], chain + n, LAB_CHAIN_FILES - n);
    return n;
}

/* `kvm-lab --add <exe> --add <inputs> [--stdin F] [--collect F] --env
 * SANDLET_LAB_PROTOCOL=1 [--env SANDLET_SNAPSHOT_PATH=...] -- <exe> <our
 * arguments>`, calloc'd, or NULL. */
static char **lab_argv(const lab_req *req, lab_paths *p, char *stdin_path, char *collect, char **chain,
                       size_t nchain, char *search_env)
{
    size_t max = 16 + 2 * req->nadds + 2 * nchain + (size_t)cli_argc;
    char **av = calloc(max, sizeof *av);
    if (!av)
        return NULL;
    size_t k = 0;
    av[k++] = p->lab;
    av[k++] = "--add";
    av[k++] = p->exe;
    for (size_t i = 0; i < req->nadds; i++) {
        /* A missing input is left for the inner run to report (exit 3): the
         * lab itself would refuse to start. */
        if (access(req->adds[i], R_OK) == 0) {
            av[k++] = "--add";
            av[k++] = (char *)req->adds[i];
        }
    }
    for (size_t i = 0; i < nchain; i++) {
        av[k++] = "--add";
        av[k++] = chain[i];
    }
    av[k++] = "--env";
    av[k++] = OUT_FRAME_ENV "=1";
    if (search_env) {
        av[k++] = "--env";
        av[k++] = search_env;
    }
    if (stdin_path) {
        av[k++] = "--stdin";
        av[k++] = stdin_path;
    }
    if (collect) {
        av[k++] = "--collect";
        av[k++] = collect;
    }
    av[k++] = "--";
    av[k++] = p->exe;
    for (int i = 1; i < cli_argc; i++)
        av[k++] = cli_argv[i];
    av[k] = NULL;
    return av;
}

int lab_maybe_reexec(const lab_req *req)
{
    unsigned arch;
    char why[256] = "";
    if (!lab_wanted(req, &arch, why, sizeof why))
        return -1;
    int rc = lab_inputs_regular(req);
    if (rc >= 0)
        return rc;
    lab_paths paths;
    if ((rc = lab_locate(arch, why, &paths)) >= 0)
        return rc;
    char *stdin_path, *collect;
    if (lab_capture(req, &stdin_path, &collect) != 0)
        return EXIT_SETUP;
    char *chain[LAB_CHAIN_FILES];
    size_t nchain = lab_chains(req, chain);
    /* Parents found through the search path are looked for there inside. */
    const char *sp = getenv("SANDLET_SNAPSHOT_PATH");
    char *search_env = NULL;
    if (sp && *sp && (search_env = malloc(strlen(sp) + 32)))
        sprintf(search_env, "SANDLET_SNAPSHOT_PATH=%s", sp);
    char **av = lab_argv(req, &paths, stdin_path, collect, chain, nchain, search_env);
    rc = EXIT_LAB;
    if (!av) {
        cli_err("out of memory");
    } else {
        rc = run_lab(av);
        if (rc == 0 && req->collect && access(req->collect, F_OK) != 0) {
            cli_err("%s: the KVM lab did not bring the file back", req->collect);
            rc = EXIT_SETUP;
        }
    }
    free(av);
    for (size_t i = 0; i < nchain; i++)
        free(chain[i]);
    free(search_env);
    if (stdin_path) {
        unlink(stdin_path);
        free(stdin_path);
    }
    free(collect);
    return rc;
}

void lab_prepare_output(const char *path)
{
    if (!getenv("SANDLET_IN_LAB") || !env_is(OUT_FRAME_ENV, "1"))
        return;
    char *d = strdup(path);
    if (!d)
        return;
    char *slash = strrchr(d, '/');
    if (slash && slash != d) {
        *slash = 0;
        /* mkdir -p: each prefix in turn; existing ones are fine. */
        for (char *p = d + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = 0;
            mkdir(d, 0755);
            *p = '/';
        }
        mkdir(d, 0755);
    }
    free(d);
}

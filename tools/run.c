/* `sandlet run [OPTIONS] PROGRAM [ARGS...]`: an ordinary program (main(), on
 * musl) in a sandbox, with its standard streams connected to ours. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Our own failures sit above what a program normally exits with, as with
 * env(1) and timeout(1). */
#define EXIT_RUN_CRASH 122   /* guest exception, abort or kill */
#define EXIT_RUN_MEMORY 123  /* the sandbox's memory is exhausted */
#define EXIT_RUN_TIMEOUT 124 /* --timeout-ms */
#define EXIT_RUN_LOAD 126    /* the program cannot be loaded */
#define EXIT_RUN_MISSING 127 /* the program does not exist */

#define MAX_ENV 256

static void run_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet run [OPTIONS] PROGRAM [ARGS...]\n"
               "Runs PROGRAM, a static x86-64 or i686 program with main() (musl: musl-gcc -static,\n"
               "scripts/musl-cc or scripts/sandlet-cc), in a sandbox: ARGS become its argv[1..]\n"
               "(argv[0] is PROGRAM as given), our stdin is its fd 0, its fds 1 and 2 are our\n"
               "stdout and stderr, and its exit status is ours. It has no files, no network and\n"
               "no other processes. Options come before PROGRAM:\n"
               "  --memory SIZE    the program's memory: heap, stack and mmap (default 256M)\n"
               "  --env NAME=VALUE add to its environment (repeatable); --env NAME copies ours\n"
               "  --timeout-ms N   stop it after N milliseconds of running (0 = no limit)\n"
               "  --stack SIZE     its stack (default 256K)\n"
               "  --help           this text\n"
               "The environment is empty unless --env adds to it.\n"
               "Exit status: the program's (128+N when it ended itself with signal N, as abort()\n"
               "does); 2 usage error; 122 it crashed (guest exception) or was stopped; 123 its\n"
               "memory is exhausted; 124 timeout; 125 the KVM lab failed; 126 PROGRAM cannot be\n"
               "loaded; 127 PROGRAM does not exist.\n");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void write_out(void *user, int fd, const void *buf, size_t len)
{
    (void)user;
    out_write(fd, buf, len);
}

/* Standard input, waited for no longer than the run's deadline: a reader
 * that never writes must not outlast --timeout-ms. */
static long read_in(void *user, void *buf, size_t cap)
{
    const uint64_t *deadline = user;
    for (;;) {
        if (*deadline) {
            uint64_t now = now_ns();
            if (now >= *deadline)
                return -ETIMEDOUT;
            uint64_t ms = (*deadline - now + 999999) / 1000000;
            struct pollfd p = {.fd = 0, .events = POLLIN};
            int r = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0)
                return -ETIMEDOUT; /* the host ends the run at its next check */
        }
        ssize_t n = read(0, buf, cap);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR)
            return -(long)errno;
    }
}

/* Failures to create the sandbox or load the program are 126; failures of
 * the running program have their own codes. */
static int exit_for(int rc)
{
    switch (rc) {
    case SL_ETIMEOUT: return EXIT_RUN_TIMEOUT;
    case SL_ENOSCRATCH: return EXIT_RUN_MEMORY;
    case SL_EFORMAT:
    case SL_EUNSUPPORTED:
    case SL_EVERSION:
    case SL_ERANGE:
    case SL_EINVAL:
    case SL_EIO:
    case SL_ENOMEM: return EXIT_RUN_LOAD;
    default: return EXIT_RUN_CRASH;
    }
}

/* `run`'s command line. */
typedef struct run_args {
    sl_config cfg;
    uint64_t timeout_ms;
    const char *env[MAX_ENV];
    size_t envc;
    char *owned[MAX_ENV]; /* the NAME=VALUE strings made for `--env NAME`, freed by cmd_run */
    size_t nowned;
    int prog; /* argv index of PROGRAM */
} run_args;

/* --env NAME=VALUE, or --env NAME: ours, if we have it. Returns 0 or the
 * exit code. */
static int env_add(run_args *a, const char *v)
{
    if (a->envc == MAX_ENV) {
        cli_err("run: more than %d --env options", MAX_ENV);
        return EXIT_USAGE;
    }
    if (!strchr(v, '=')) {
        const char *ours = getenv(v);
        if (!ours)
            return 0; /* like env(1): an unset variable stays unset */
        size_t n = strlen(v) + strlen(ours) + 2;
        char *kv = malloc(n);
        if (!kv) {
            cli_err("out of memory");
            return EXIT_SETUP;
        }
        snprintf(kv, n, "%s=%s", v, ours);
        v = a->owned[a->nowned++] = kv;
    }
    a->env[a->envc++] = v;
    return 0;
}

/* Option name (with its value v). Returns 0 or the exit code. */
static int run_option(run_args *a, const char *name, const char *v)
{
    if (strcmp(name, "--memory") == 0 || strcmp(name, "--stack") == 0) {
        uint64_t n;
        if (parse_size(v, &n) != 0 || n == 0) {
            cli_err("run: %s: '%s' is not a size", name, v);
            return EXIT_USAGE;
        }
        *(strcmp(name, "--memory") == 0 ? &a->cfg.scratch_size : &a->cfg.stack_size) = n;
        return 0;
    }
    if (strcmp(name, "--timeout-ms") == 0) {
        if (parse_u64_dec(v, &a->timeout_ms) != 0) {
            cli_err("run: --timeout-ms: '%s' is not a number", v);
            return EXIT_USAGE;
        }
        return 0;
    }
    if (strcmp(name, "--env") == 0)
        return env_add(a, v);
    cli_err("run: unknown option '%s'", name);
    run_usage(2);
    return EXIT_USAGE;
}

/* The options before PROGRAM, each --name=value or --name value. Returns
 * -1 with a->prog set when there is a program to run, else the exit code. */
static int run_parse(run_args *a, int argc, char **argv)
{
    int i = 1;
    char opt[64];
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *name = argv[i], *v, *eq = strchr(name, '=');
        if (strcmp(name, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            run_usage(1);
            return EXIT_OK;
        }
        if (eq && (size_t)(eq - name) < sizeof opt) {
            memcpy(opt, name, (size_t)(eq - name));
            opt[eq - name] = 0;
            name = opt;
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            cli_err("run: %s needs a value", name);
            run_usage(2);
            return EXIT_USAGE;
        }
        int rc = run_option(a, name, v);
        if (rc != 0)
            return rc;
    }
    if (i >= argc) {
        cli_err("run: PROGRAM is required");
        run_usage(2);
        return EXIT_USAGE;
    }
    a->prog = i;
    return -1;
}

/* Returns -1 when prog is a regular file, else the exit code. */
static int program_check(const char *prog)
{
    struct stat st;
    if (stat(prog, &st) != 0) {
        cli_err("%s: %s", prog, strerror(errno));
        return errno == ENOENT || errno == ENOTDIR ? EXIT_RUN_MISSING : EXIT_RUN_LOAD;
    }
    if (!S_ISREG(st.st_mode)) { /* a FIFO or a device would block or never end */
        cli_err("%s: not a regular file", prog);
        return EXIT_RUN_LOAD;
    }
    return -1;
}

/* The program, here; its exit status or ours. */
static int run_here(run_args *a, int argc, char **argv)
{
    const char *prog = argv[a->prog];
    uint64_t deadline = a->timeout_ms ? now_ns() + a->timeout_ms * 1000000ull : 0;
    sl_run_opts o = {.argc = (size_t)(argc - a->prog), .argv = (const char *const *)(argv + a->prog),
                     .envc = a->envc, .envp = a->env, .cfg = &a->cfg, .timeout_ms = a->timeout_ms,
                     .read = read_in, .write = write_out, .user = &deadline};
    sl_run_result res;
    char err[512] = "";
    int rc = sl_run_file(prog, &o, &res, err, sizeof err);
    if (rc) {
        cli_err("%s: %s", prog, err[0] ? err : sl_strerror(rc));
        return exit_for(rc);
    }
    return res.exit_status;
}

static int run(run_args *a, int argc, char **argv)
{
    int rc = run_parse(a, argc, argv);
    if (rc < 0)
        rc = program_check(argv[a->prog]);
    if (rc < 0) {
        lab_req req;
        memset(&req, 0, sizeof req);
        req.adds[req.nadds++] = argv[a->prog];
        req.capture_stdin = 1;
        rc = lab_maybe_reexec(&req);
    }
    if (rc < 0)
        rc = run_here(a, argc, argv);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_args a;
    memset(&a, 0, sizeof a);
    a.cfg.scratch_size = SL_RUN_DEFAULT_SCRATCH;
    int rc = run(&a, argc, argv);
    while (a.nowned)
        free(a.owned[--a.nowned]);
    return rc;
}

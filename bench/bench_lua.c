/* The Lua corpus in the guest against the same interpreter run natively, in
 * the same run (needs KVM: native hardware KVM, or the KVM lab).
 *
 * Every tests/lua script runs through the Lua 5.4 guest (`lua -`, the
 * unmodified lua.c, a static musl program): once with sl_run_file, the script
 * on standard input from a read callback and the output discarded, and once
 * natively, the same binary started with fork/exec, the script on standard
 * input and the output going to /dev/null. Both run as tests/e2e/lua.sh runs
 * the corpus: the environment TZ=UTC, LANG=C and SANDLET_LUA_VAR, argv
 * {"lua", "-"} plus the words of a "-- @args:" line, an 8 MiB stack
 * (sl_config.stack_size; RLIMIT_STACK natively) and sandlet's default 256 MiB
 * of memory. The figure is the
 * total over all scripts (median over repetitions): the guest total against
 * the native total. Each guest run creates its sandbox from the ELF, as
 * `sandlet run` does; each native run pays a fork and an exec. In the KVM lab
 * both run inside the lab's VM, on the same emulated CPU, so the ratio still
 * compares like with like (the times themselves prove nothing about speed).
 *
 * Scripts about heap exhaustion (a name containing "memory" or "exhaust", or
 * marked "@memlimit") are left out: natively they would allocate until the
 * machine's memory runs out. A script that fails in the guest (an error from
 * sl_run_file, or a time limit) is reported and left out of both totals, and
 * the program then exits 1 after printing the figure.
 *
 * lua_empty_script: the same for an empty script, the fixed cost of a run
 * (the sandbox made from the ELF, the VM, the interpreter's start and exit).
 *
 * One more guest run per script, with the sandbox kept until after the run,
 * gives the events summed over the corpus (sl_sandbox_info: exits, ioctls,
 * guest faults, copy-on-write copies, demand pages, system calls).
 *
 * Usage: bench_lua [SCRIPT_DIR [LUA]]   (default tests/lua and
 * $SANDLET_GUESTS/lua, SANDLET_GUESTS defaulting to build/guests).
 * SANDLET_BENCH_QUICK=1: one repetition. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "sandlet.h"

static const char *const lua_env[] = {"TZ=UTC", "LANG=C", "SANDLET_LUA_VAR=sandlet lua corpus"};
#define LUA_ENVC 3u
#define LUA_STACK (8u << 20) /* the corpus's C stack, as tests/e2e/lua.sh gives it */
#define MAX_ARGS 16

typedef struct script {
    char *name;
    char *text;
    size_t len;
    const char *argv[MAX_ARGS + 3]; /* "lua", "-", the "-- @args:" words, NULL */
    size_t argc;
    char *args;                     /* the words' storage */
    int guest_status, native_status; /* exit status, -1 until known */
    int failed;                     /* the guest run failed: left out */
    double *guest_s, *native_s;     /* per repetition */
    sl_sandbox_info ev;
} script;

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "bench_lua: %s: %s\n", what, msg);
    exit(1);
}

/* ------------------------------------------------------------ the corpus */

static int is_lua(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 4 && strcmp(d->d_name + n - 4, ".lua") == 0;
}

/* The whole file, NUL-terminated (for strstr); NULL when unreadable. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0)
        if ((n += r) == cap) {
            char *nb = realloc(b, (cap *= 2) + 1);
            if (!nb)
                free(b);
            b = nb;
        }
    fclose(f);
    if (b)
        b[n] = 0;
    *len = n;
    return b;
}

static int exhausts_heap(const char *name, const char *text)
{
    return strstr(name, "memory") || strstr(name, "exhaust") || strstr(text, "@memlimit");
}

/* argv: "lua", "-", then the words after "-- @args:" on a line of the
 * script, if one has it (split at blanks, as tests/e2e/lua.sh does). */
static void script_args(script *s)
{
    s->argv[0] = "lua";
    s->argv[1] = "-";
    s->argc = 2;
    const char *p = s->text;
    while (p && strncmp(p, "-- @args:", 9) != 0)
        if ((p = strchr(p, '\n')))
            p++;
    if (p) {
        size_t n = strcspn(p + 9, "\n");
        s->args = strndup(p + 9, n);
        for (char *save = NULL, *w = strtok_r(s->args, " \t\r", &save); w && s->argc < MAX_ARGS + 2;
             w = strtok_r(NULL, " \t\r", &save))
            s->argv[s->argc++] = w;
    }
    s->argv[s->argc] = NULL;
}

static sl_config lua_config(void)
{
    sl_config cfg = {.scratch_size = SL_RUN_DEFAULT_SCRATCH, .stack_size = LUA_STACK};
    return cfg;
}

/* ----------------------------------------------------------- guest runs */

typedef struct reader {
    const char *p;
    size_t left;
} reader;

static long serve(void *user, void *buf, size_t cap)
{
    reader *r = user;
    size_t n = r->left < cap ? r->left : cap;
    memcpy(buf, r->p, n);
    r->p += n;
    r->left -= n;
    return (long)n;
}

static void discard(void *user, int fd, const void *buf, size_t len)
{
    (void)user;
    (void)fd;
    (void)buf;
    (void)len;
}

/* Runs s through sl_run_file; 0 or the error (message in err). */
static int guest_run(const char *lua, script *s, uint64_t limit_ms, char *err, size_t errlen)
{
    reader r = {s->text, s->len};
    sl_config cfg = lua_config();
    sl_run_opts o = {.argc = s->argc,
                     .argv = s->argv,
                     .envc = LUA_ENVC,
                     .cfg = &cfg,
                     .envp = lua_env,
                     .timeout_ms = limit_ms,
                     .read = serve,
                     .write = discard,
                     .user = &r};
    sl_run_result res;
    int rc = sl_run_file(lua, &o, &res, err, errlen);
    s->guest_status = rc ? -1 : res.exit_status;
    return rc;
}

/* The same run as sl_run_file makes, with the sandbox kept to read its
 * counters afterwards. */
static int guest_events(const char *lua, script *s, uint64_t limit_ms, char *err, size_t errlen)
{
    sl_config cfg = lua_config();
    sl_sandbox *sb;
    int rc = sl_sandbox_new_from_file(&sb, lua, &cfg, err, errlen);
    if (rc)
        return rc;
    reader r = {s->text, s->len};
    sl_sandbox_set_stdio(sb, serve, discard, &r);
    sl_sandbox_set_timeout(sb, limit_ms);
    sl_run_result res;
    if (!(rc = sl_sandbox_set_args(sb, s->argc, s->argv, LUA_ENVC, lua_env)))
        rc = sl_sandbox_run(sb, &res);
    if (rc)
        snprintf(err, errlen, "%s", sl_sandbox_errmsg(sb));
    else if ((rc = sl_sandbox_info_get(sb, &s->ev)))
        snprintf(err, errlen, "info: %s", sl_sandbox_errmsg(sb));
    sl_sandbox_free(sb);
    return rc;
}

/* ---------------------------------------------------------- native runs */

/* fork/exec of lua with the script on stdin and the output to /dev/null;
 * the exit status (128 + signal when killed, e.g. by the time limit). */
static int native_run(const char *lua, const script *s, const char *path, unsigned limit_s)
{
    pid_t pid = fork();
    if (pid < 0)
        fail("fork", strerror(errno));
    if (pid == 0) {
        int in = open(path, O_RDONLY), out = open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(126);
        close(in);
        close(out);
        struct rlimit st = {LUA_STACK, LUA_STACK};
        setrlimit(RLIMIT_STACK, &st);
        alarm(limit_s); /* survives the exec: SIGALRM ends a run that hangs */
        char *envp[] = {(char *)lua_env[0], (char *)lua_env[1], (char *)lua_env[2], NULL};
        execve(lua, (char *const *)s->argv, envp);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            fail("waitpid", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/lua";
    char lua[4096];
    if (argc > 2)
        snprintf(lua, sizeof lua, "%s", argv[2]);
    else {
        const char *g = getenv("SANDLET_GUESTS");
        snprintf(lua, sizeof lua, "%s/lua", g && *g ? g : "build/guests");
    }
    int lab = bench_in_lab();
    bench_where(lab ? "the native baseline runs in the lab VM too, on the same emulated CPU" : NULL);
    printf("# lua: %s, scripts: %s\n", lua, dir);

    struct dirent **ents;
    int n = scandir(dir, &ents, is_lua, alphasort);
    if (n < 0)
        fail(dir, strerror(errno));
    script *sc = calloc((size_t)n + 1, sizeof *sc);
    int ns = 0;
    char skipped[4096] = "";
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        size_t len = 0;
        char *z = read_file(path, &len);
        if (!z)
            fail(path, "cannot read");
        if (exhausts_heap(ents[i]->d_name, z)) {
            size_t k = strlen(skipped);
            snprintf(skipped + k, sizeof skipped - k, " %s", ents[i]->d_name);
            free(z);
        } else {
            sc[ns].name = strdup(ents[i]->d_name);
            sc[ns].text = z;
            sc[ns].len = len;
            script_args(&sc[ns]);
            ns++;
        }
        free(ents[i]);
    }
    free(ents);
    if (ns == 0)
        fail(dir, "no scripts to run");
    printf("# skipped (heap exhaustion: name has \"memory\" or \"exhaust\", or marked @memlimit):%s\n",
           skipped[0] ? skipped : " none");

    int reps = bench_quick() ? 1 : lab ? 3 : 5;
    /* per script: the lab's TCG runs guest code tens of times slower */
    unsigned limit_s = lab ? 120 : 20;
    char err[512];
    for (int i = 0; i < ns; i++) {
        sc[i].guest_s = calloc((size_t)reps, sizeof(double));
        sc[i].native_s = calloc((size_t)reps, sizeof(double));
    }
    script empty = {.text = "", .len = 0};
    script_args(&empty);
    double *eg = calloc((size_t)reps, sizeof *eg), *en = calloc((size_t)reps, sizeof *en);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        int rc = guest_run(lua, &empty, (uint64_t)limit_s * 1000u, err, sizeof err);
        double t1 = bench_now();
        int nst = native_run(lua, &empty, "/dev/null", limit_s);
        double t2 = bench_now();
        if (rc || empty.guest_status != 0 || nst != 0)
            fail("empty script", rc ? err : "non-zero exit status");
        eg[r] = t1 - t0;
        en[r] = t2 - t1;
        for (int i = 0; i < ns; i++) {
            script *s = &sc[i];
            if (s->failed)
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, s->name);
            t0 = bench_now();
            rc = guest_run(lua, s, (uint64_t)limit_s * 1000u, err, sizeof err);
            t1 = bench_now();
            s->native_status = native_run(lua, s, path, limit_s);
            t2 = bench_now();
            if (rc) {
                printf("# FAIL %s: in the guest: %s: %s\n", s->name, sl_strerror(rc), err);
                s->failed = 1;
                continue;
            }
            s->guest_s[r] = t1 - t0;
            s->native_s[r] = t2 - t1;
        }
    }

    sl_sandbox_info sum;
    memset(&sum, 0, sizeof sum);
    int differ = 0;
    for (int i = 0; i < ns; i++) {
        script *s = &sc[i];
        if (s->failed)
            continue;
        int rc = guest_events(lua, s, (uint64_t)limit_s * 1000u, err, sizeof err);
        if (rc) {
            printf("# FAIL %s: in the guest (events run): %s: %s\n", s->name, sl_strerror(rc), err);
            s->failed = 1;
            continue;
        }
        sum.exits += s->ev.exits;
        sum.exits_io += s->ev.exits_io;
        sum.exits_mmio += s->ev.exits_mmio;
        sum.exits_other += s->ev.exits_other;
        sum.ioctls += s->ev.ioctls;
        sum.guest_faults += s->ev.guest_faults;
        sum.cow_copies += s->ev.cow_copies;
        sum.demand_pages += s->ev.demand_pages;
        sum.syscalls += s->ev.syscalls;
        sum.dirty_pages += s->ev.dirty_pages;
        printf("# lua %s: guest=%.3fms native=%.3fms exit=%d/%d exits=%llu syscalls=%llu guest_faults=%llu "
               "demand=%llu dirty_pages=%llu\n",
               s->name, s->guest_s[reps - 1] * 1e3, s->native_s[reps - 1] * 1e3, s->guest_status, s->native_status,
               (unsigned long long)s->ev.exits, (unsigned long long)s->ev.syscalls,
               (unsigned long long)s->ev.guest_faults, (unsigned long long)s->ev.demand_pages,
               (unsigned long long)s->ev.dirty_pages);
        if (s->guest_status != s->native_status) {
            printf("# note: %s exits with status %d in the guest, %d natively\n", s->name, s->guest_status,
                   s->native_status);
            differ++;
        }
    }
    /* totals per repetition over the scripts that never failed */
    double *tg = calloc((size_t)reps, sizeof *tg), *tn = calloc((size_t)reps, sizeof *tn);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < ns; i++)
            if (!sc[i].failed) {
                tg[r] += sc[i].guest_s[r];
                tn[r] += sc[i].native_s[r];
            }
    int timed = 0;
    for (int i = 0; i < ns; i++)
        timed += !sc[i].failed;
    int failed = ns - timed;
    printf("# lua_corpus: %d scripts timed, %d failed in the guest, %d with another exit status than natively; "
           "%d repetition(s), totals over the corpus\n",
           timed, failed, differ, reps);
    bench_report("lua_corpus", bench_median(tg, reps), bench_median(tn, reps), "ms");
    bench_report("lua_empty_script", bench_median(eg, reps), bench_median(en, reps), "ms");
    printf("# events lua_corpus (sum over %d scripts): exits=%llu (io=%llu mmio=%llu other=%llu) ioctls=%llu "
           "guest_faults=%llu cow=%llu demand=%llu syscalls=%llu dirty_pages=%llu\n",
           timed, (unsigned long long)sum.exits, (unsigned long long)sum.exits_io,
           (unsigned long long)sum.exits_mmio, (unsigned long long)sum.exits_other, (unsigned long long)sum.ioctls,
           (unsigned long long)sum.guest_faults, (unsigned long long)sum.cow_copies,
           (unsigned long long)sum.demand_pages, (unsigned long long)sum.syscalls,
           (unsigned long long)sum.dirty_pages);
    printf("# goal lua_corpus: exits only where the host must act (a read of stdin, a write to stdout or "
           "stderr, a clock read, the exit), all io, mmio=0 other=0; every other system call is served in the "
           "guest\n");
    fflush(stdout);
    for (int i = 0; i < ns; i++) {
        free(sc[i].name);
        free(sc[i].text);
        free(sc[i].guest_s);
        free(sc[i].native_s);
        free(sc[i].args);
    }
    free(empty.args);
    free(eg);
    free(en);
    free(sc);
    free(tg);
    free(tn);
    return failed ? 1 : 0;
}

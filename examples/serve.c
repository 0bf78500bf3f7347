/* serve — a request server on sandlet: JSON requests in, JSON answers out,
 * every request run in a sandbox that starts from the same snapshot.
 *
 *   build/serve SNAPSHOT_FILE [--workers N] [--socket PATH] [--timeout-ms N] [--quiet]
 *
 *   build/sandlet snapshot save build/guests/demo demo.snap
 *   echo '{"id": 1, "fn": "Add", "args": [2, 40]}' | build/serve demo.snap
 *   {"id":1,"ok":true,"type":"i32","value":42}
 *
 * Each line of stdin (or of each connection to the Unix socket at PATH) is a
 * request {"id": any, "fn": NAME, "args": [...]}; each gets one answer line,
 * {"id":..,"ok":true,"type":..,"value":..} or {"id":..,"ok":false,
 * "error":..,"code":SL_E*}. docs/serve.md has the details.
 *
 * The design, as a user of the public API (include/sandlet.h) would do it:
 *  - the snapshot file is loaded once (sl_snapshot_load: mapped, shared by
 *    every sandbox) and each of the N worker threads gets its own sandbox
 *    from it (sl_sandbox_new_from_snapshot: ready to call, no init);
 *  - arguments are converted to the types the guest registered for the
 *    function (sl_sandbox_find_function, sl_sandbox_function);
 *  - after every call the worker restores the snapshot (sl_sandbox_restore),
 *    so no request sees what an earlier one did, and a call that faulted,
 *    timed out (sl_sandbox_set_timeout) or ran out of memory left nothing
 *    behind: the restore also recovers the POISONED sandbox.
 * The core is in serve_core.c (workers, queue, figures), serve_request.c
 * (one request) and serve_io.c (stdin, the socket); this file is the
 * command line. At the end (end of stdin; SIGINT or SIGTERM) the figures go
 * to stderr: requests, errors, wall time, throughput, latency percentiles,
 * each worker's counts.
 *
 * Exit status: 0 once serving started; 2 for a usage error; 1 when the
 * server could not start (a bad snapshot file, a socket path in use). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

static serve *volatile the_server; /* for the signal handler */

static void usage(FILE *f)
{
    fprintf(f, "usage: serve SNAPSHOT_FILE [--workers N] [--socket PATH] [--timeout-ms N] [--quiet]\n"
               "Answers JSON requests, one per line, from stdin (or from the connections to a Unix\n"
               "socket at PATH), each in a sandbox restored to SNAPSHOT_FILE after every call:\n"
               "  {\"id\": any, \"fn\": \"NAME\", \"args\": [...]}\n"
               "  --workers N      N worker threads, each with its own sandbox (default 1, at most %u)\n"
               "  --socket PATH    listen on a Unix stream socket until SIGINT or SIGTERM\n"
               "  --timeout-ms N   stop a call after N ms (default: no limit)\n"
               "  --quiet          discard what the guests print (default: to stderr)\n"
               "Figures go to stderr at the end. Exit status: 0 served, 1 could not start, 2 usage.\n",
            SERVE_MAX_WORKERS);
}

/* A decimal number in [min, max]; -1 when s is not one. */
static int parse_num(const char *s, unsigned long long min, unsigned long long max, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

typedef struct args {
    const char *snapshot, *socket;
    serve_opts opts;
} args;

/* 0, or -1 after printing what is wrong. */
static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->opts.workers = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        unsigned long long v;
        if (strcmp(o, "--workers") == 0) {
            if (i + 1 >= argc || parse_num(argv[++i], 1, SERVE_MAX_WORKERS, &v)) {
                fprintf(stderr, "serve: --workers takes a number in 1..%u\n", SERVE_MAX_WORKERS);
                return -1;
            }
            a->opts.workers = (unsigned)v;
        } else if (strcmp(o, "--timeout-ms") == 0) {
            if (i + 1 >= argc || parse_num(argv[++i], 0, 86400000ull * 365, &v)) {
                fprintf(stderr, "serve: --timeout-ms takes a number of milliseconds\n");
                return -1;
            }
            a->opts.timeout_ms = v;
        } else if (strcmp(o, "--socket") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                fprintf(stderr, "serve: --socket takes a path\n");
                return -1;
            }
            a->socket = argv[++i];
        } else if (strcmp(o, "--quiet") == 0) {
            a->opts.quiet = 1;
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "serve: unknown option %s\n", o);
            return -1;
        } else if (!a->snapshot) {
            a->snapshot = o;
        } else {
            fprintf(stderr, "serve: one snapshot file only (%s?)\n", o);
            return -1;
        }
    }
    if (!a->snapshot) {
        fprintf(stderr, "serve: no snapshot file\n");
        return -1;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        serve_stop(the_server);
}

/* SIGINT and SIGTERM stop the server (the core's threads block them, so
 * they land here); a reader gone from stdout must not kill us mid-answer. */
static void handle_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    char err[512] = "";
    serve *s;
    if (serve_new(&s, a.snapshot, &a.opts, err, sizeof err) != 0) {
        fprintf(stderr, "serve: %s\n", err);
        return 1;
    }
    the_server = s;
    handle_signals();
    int rc = a.socket ? serve_run_socket(s, a.socket, err, sizeof err)
                      : serve_run_stream(s, STDIN_FILENO, STDOUT_FILENO, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "serve: %s\n", err);
        the_server = NULL;
        serve_free(s);
        return 1;
    }
    serve_stats_print(s, stderr);
    the_server = NULL;
    serve_free(s);
    return 0;
}

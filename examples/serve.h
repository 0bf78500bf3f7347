/* The request server's core (examples/serve.c is its command line, and
 * bench/bench_serve.c drives it in-process): a pool of worker threads, each
 * with its own sandbox started from one snapshot file, answering JSON
 * requests one line at a time and restoring the sandbox after every call.
 * The request and answer formats are in docs/serve.md.
 *
 * Thread-safety: one thread creates, runs and frees a server; serve_stop may
 * be called from any thread or signal handler. The core starts its own
 * threads with SIGINT and SIGTERM blocked, so that those signals reach the
 * thread that runs the server (serve.c stops the server from their handler).
 * Writes to a closed pipe or socket must not kill the process: the core
 * sends to sockets with MSG_NOSIGNAL, and a program that hands it a pipe as
 * out_fd ignores SIGPIPE. */
#ifndef SERVE_H
#define SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A request line longer than this (bytes, without its newline) is not read:
 * it gets an error answer (SL_ERANGE). */
#define SERVE_MAX_LINE (1u << 20)
/* At most this many workers, and this many socket connections at once (a
 * connection beyond it gets one error line and is closed). */
#define SERVE_MAX_WORKERS 256
#define SERVE_MAX_CONNS 64

typedef struct serve_opts {
    unsigned workers;    /* worker threads (sandboxes), 1..SERVE_MAX_WORKERS */
    uint64_t timeout_ms; /* per call; 0 = none */
    int quiet;           /* discard what the guests print (else: to stderr, tagged by worker) */
} serve_opts;

typedef struct serve serve;

/* Loads the snapshot file once and starts opts->workers sandboxes from it,
 * each with the host function HostUpper(string) -> string. 0, or -1 with
 * the reason in err[0..errlen) (*out is NULL then). */
int serve_new(serve **out, const char *snapshot_path, const serve_opts *opts, char *err, size_t errlen);
/* Frees the server and its sandboxes; not while a run is in progress. */
void serve_free(serve *s);

/* Serves the request lines read from in_fd until its end, writing each
 * answer line to out_fd whole (answers of several workers may come out of
 * order). Returns 0 when it served (a read error ends the run and is
 * printed to stderr), -1 with err filled when it could not start. May be
 * called again on the same server (the benchmark does), unless stopped. */
int serve_run_stream(serve *s, int in_fd, int out_fd, char *err, size_t errlen);

/* Listens on a Unix stream socket at path and serves every connection
 * (answers in the order of its requests) until serve_stop; then removes
 * the socket file. -1 with err filled when it cannot listen (path exists,
 * too long, ...); 0 after serving. */
int serve_run_socket(serve *s, const char *path, char *err, size_t errlen);

/* Ends the run in progress (or the next one) soon: no more lines are read,
 * calls in flight are killed (they get error answers), the requests already
 * taken are answered. Async-signal-safe; the server cannot run again. */
void serve_stop(serve *s);

/* Figures of the last run. Latency: from the moment a worker takes a
 * request to the moment its answer is written (stream) or handed to the
 * connection (socket): parse, call, restore, answer. Queueing is left out. */
typedef struct serve_stats {
    uint64_t requests, errors; /* answered; of those, with "ok": false */
    double wall_s;             /* from the first worker's start to the last one's end */
    double p50_us, p90_us, p99_us, max_us;
} serve_stats;
void serve_stats_get(const serve *s, serve_stats *st);
/* Prints the figures and each worker's counts as "serve: ..." lines. */
void serve_stats_print(const serve *s, FILE *f);

#endif

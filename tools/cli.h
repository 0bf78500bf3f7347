/* The `sandlet` command-line tool: declarations shared by the files in tools/.
 *
 * main.c      dispatch, --version, top-level help
 * out.c       all output (plain, or framed when the outer sandlet runs us in the KVM lab)
 * json.c      --json output: a JSON writer, typed values, error objects
 * progress.c  progress lines on a terminal (snapshot save, verify)
 * lineedit.c  the shell's input: libedit on a terminal, plain lines otherwise
 * args.c      options, sizes, typed values (parse and print)
 * guest.c     opening a GUEST (ELF or snapshot file), HostUpper, guest prints, calls
 * call.c      `sandlet call`
 * shell.c     `sandlet shell` and its line tokenizer
 * snap.c      `sandlet snapshot save|inspect|verify|flatten` and the snapshot-file glue
 * snapdiff.c  `sandlet snapshot diff`
 * lab.c       re-executing ourselves inside scripts/kvm-lab; `sandlet backend`
 * labchain.c  the parent files of a child snapshot file, for the lab */
#ifndef SANDLET_CLI_H
#define SANDLET_CLI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sandlet.h"

/* Room for the library's messages: a missing parent file's names where it
 * looked. */
#define ERR_MAX 4096

/* Exit codes (docs/cli.md). */
#define EXIT_OK 0
#define EXIT_FAIL 1   /* a call or a shell command failed */
#define EXIT_USAGE 2  /* bad command line or arguments */
#define EXIT_SETUP 3  /* cannot create the sandbox or read/write a file */
#define EXIT_VERIFY 4 /* snapshot verify found the file damaged */
#define EXIT_LAB 125  /* the KVM lab failed */

/* ------------------------------------------------------------------ out.c */

/* Every byte the tool prints goes through here so that, inside the lab, the
 * outer sandlet can split our merged stdout/stderr back apart. */
void out_init(void);
void out_write(int fd, const void *p, size_t n);
void out_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_vprintf(int fd, const char *fmt, va_list ap);
/* The errno of the first write to stdout that failed, or 0. */
int out_stdout_error(void);
/* "sandlet: ..." on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, for a failure the library reported with `code` (SL_E*). */
void cli_errc(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message of cli_err/cli_errc (without "sandlet: "; "" if none)
 * and its code (0 after cli_err), for --json's error object. */
const char *cli_last_err(int *code);
/* Splits framed output captured from the lab onto our stdout and stderr. */
void out_demux(const unsigned char *buf, size_t len);
/* Name of the environment variable that asks for framed output. */
#define OUT_FRAME_ENV "SANDLET_LAB_PROTOCOL"

/* ----------------------------------------------------------------- json.c */

/* A JSON text under construction (zero-initialise it). Keys and strings are
 * escaped; out of memory is remembered and reported by jw_emit. */
typedef struct jw {
    char *p;
    size_t len, cap;
    int oom;
    int comma; /* a value was written at this level: the next needs a comma */
} jw;

/* k is the member name inside an object, NULL for an array element or the
 * top level. bracket is '{' or '[' (jw_close: '}' or ']'). */
void jw_open(jw *w, const char *k, char bracket);
void jw_close(jw *w, char bracket);
void jw_str(jw *w, const char *k, const char *s); /* NULL: null */
void jw_strn(jw *w, const char *k, const void *s, size_t n);
void jw_hex(jw *w, const char *k, const void *s, size_t n); /* lowercase hex string */
void jw_u64(jw *w, const char *k, uint64_t v);
void jw_i64(jw *w, const char *k, int64_t v);
void jw_bool(jw *w, const char *k, int v);
void jw_null(jw *w, const char *k);
/* "type" and "value" of a typed value (docs/cli.md, "JSON output"). */
void jw_value(jw *w, const sl_value *v);
/* Writes the text and a newline to fd in one write, and frees it. */
void jw_emit(jw *w, int fd);
/* 1 when the n bytes at s are well-formed UTF-8. */
int json_string_valid(const void *s, size_t n);
/* {"ok":false,["command":..,]["function":..,]"error":msg,"code":code|null[,"exit":exit_code]}
 * on stdout; command and function are left out when NULL, exit when < 0,
 * code is null when 0 (the failure is the CLI's own, not the library's). */
void json_error(const char *command, const char *function, const char *msg, int code, int exit_code);
/* The same for a failure about files: {"ok":false,"K1":F1[,"K2":F2],"error":..,"code":..,"exit":..}
 * (F1, F2 null when NULL; K2 NULL leaves the second out), e.g. "file" for
 * inspect and verify, "a" and "b" for diff. */
void json_error_files(const char *k1, const char *f1, const char *k2, const char *f2, const char *msg, int code,
                      int exit_code);
/* 1 when one of argv[0..argc) before a "--" is "--json": a command line the
 * CLI cannot make sense of still gets its usage error in JSON then. */
int json_wanted(int argc, char **argv);

/* ------------------------------------------------------------- progress.c */

/* Progress of a long save or verify on a terminal: "sandlet: verb FILE: N%"
 * redrawn in place on stderr, shown only when stderr is a terminal, not
 * quiet, and the work is large (over 64 MiB) or slow (over 0.5 s). */
typedef struct progress {
    const char *verb, *file;
    int enabled, shown, last_pct;
    double start, last_draw;
} progress;

void progress_init(progress *p, const char *verb, const char *file, int quiet);
/* An sl_progress_fn; user is the progress. */
void progress_update(void *user, uint64_t done, uint64_t total);
/* Erases the line if one was drawn. */
void progress_end(progress *p);

/* ------------------------------------------------------------- lineedit.c */

/* The shell's input. On a terminal (stdin and stdout both), libedit: line
 * editing, the prompt "> " and history (~/.sandlet_history, or
 * $SANDLET_HISTORY; empty: none; not a regular file: none, with a warning).
 * Otherwise lines as they come, with the prompt only when stdin is a
 * terminal: on stdout when that is one too, else on stderr when that is,
 * so that a redirected stdout holds results only. */
typedef struct line_reader {
    int edit;        /* libedit is reading */
    int prompt_fd;   /* where "> " goes before each plain read (1 or 2), or -1 */
    char *line;      /* the last line (malloc'd) */
    size_t cap;
    char *history;   /* history file, or NULL */
} line_reader;

void lines_open(line_reader *r);
/* The next line (newline dropped with libedit, kept otherwise), valid until
 * the next call; NULL at end of input. *len is its length; NUL bytes in it
 * are possible without libedit. */
const char *lines_read(line_reader *r, size_t *len);
/* Saves the history, frees everything. eof: the input ended (not `quit`). */
void lines_close(line_reader *r, int eof);

/* ----------------------------------------------------------------- args.c */

typedef struct cli_opts {
    sl_config cfg;
    uint64_t timeout_ms;
    int quiet;
    int sizes_given; /* any of --heap/--scratch/... */
    int help;
    /* Init data (guest.c reads the file when it creates the sandbox): */
    const char *init_data_path; /* --init-data FILE, or NULL */
    uint64_t init_data_size;    /* --init-data-size: bytes, at least FILE's; 0 = FILE's size */
    unsigned init_data_perm;    /* --init-data-perm: SL_PERM_* bits; 0 = read-only */
    int init_given;             /* any --init-data* option */
    int json;                   /* --json (call, shell): JSON on stdout, the guest's fd 1 to stderr */
} cli_opts;

/* If argv[*i] is a common option, consumes it (and its value) and returns 1;
 * returns 0 when it is not one, or EXIT_USAGE after printing why. */
int opt_take(cli_opts *o, int argc, char **argv, int *i);
/* The command line of `call` and `shell`, argv[1..argc): the common options
 * wherever they stand before a "--", --json (o->json is set first, so that
 * even a usage error is answered in JSON), and each other argument in order
 * to operand(user, arg), which returns 0, or non-zero after printing why it
 * is wrong. Returns -1 when the command should go on; else, after the
 * command's usage(fd), EXIT_OK for --help or EXIT_USAGE. */
int opt_scan(cli_opts *o, int argc, char **argv, int (*operand)(void *user, char *arg), void *user,
             void (*usage)(int fd));
/* A command's own option NAME that takes a value: when argv[*i] is "NAME
 * VALUE" or "NAME=VALUE", sets *val, moves *i past it and returns 1; 0 when
 * it is not that option; -1 when the value is missing (message printed). */
int opt_string(const char *name, int argc, char **argv, int *i, const char **val);
/* The command line of a snapshot command on two files, argv[1..argc):
 * [--help|-h] [--parent LIST] [FLAG] [--] A B, where FLAG is the command's
 * own switch (flag, or its one-letter alias; either may be NULL). "--" ends
 * the options, so a file may be named "-x". Anything else is a usage error,
 * printed once as "snapshot CMD: unexpected argument '...'"; a missing A or B
 * is left to the caller (npos < 2), who words it. */
typedef struct pair_args {
    const char *pos[2], *parents;
    int npos, help, flag, bad;
} pair_args;
void opt_pair(const char *cmd, const char *flag, const char *alias, int argc, char **argv, pair_args *a);
/* Checks the options together once all are read (--init-data-perm needs
 * init data). Returns 0, or EXIT_USAGE after printing why. */
int opt_finish(const cli_opts *o);
/* Help text for the common options. */
extern const char OPT_HELP[];

int parse_size(const char *s, uint64_t *out);
int parse_u64_dec(const char *s, uint64_t *out);

/* Parses text as a value of `type`. Strings/bytes: v->v.buf points into *store
 * (bytes) or into text (strings); *store is malloc'd and freed by the caller.
 * Returns 0 or -1 with a reason in why. */
int value_parse(int type, const char *text, sl_value *v, void **store, char *why, size_t whylen);
/* Prints a value as the CLI shows it: strings raw, bytes hex, bool
 * true/false, floats %g, void nothing. Adds a newline unless void. */
void value_print(int fd, const sl_value *v, int void_text);
/* "Name(i32, string) -> i64" into buf. */
void signature_format(char *buf, size_t len, const char *name, int ret, const int *params, size_t n);

/* ---------------------------------------------------------------- guest.c */

typedef struct cli_guest {
    sl_sandbox *sb;
    char *upper_buf; /* HostUpper's result, valid until the next host call */
    size_t upper_cap;
    const char *path;
} cli_guest;

/* Creates and initialises a sandbox from an ELF or a snapshot file, with
 * HostUpper registered and guest prints routed; an ELF gets the init data
 * of o (the file is read into memory for the creation, then freed).
 * Returns 0 or an exit code (message printed). */
int guest_open(cli_guest *g, const char *path, const cli_opts *o);
void guest_close(cli_guest *g);
/* 1 when the file starts with the ELF magic, 0 otherwise, a negative SL_E*
 * if it cannot be read or is not a regular file (the reason in why). */
int file_is_elf(const char *path, char *why, size_t whylen);

typedef struct call_result {
    int exit;             /* EXIT_OK, EXIT_USAGE (argument count or text) or EXIT_FAIL */
    int code;             /* SL_E* when the library failed it, else 0 */
    const char *function; /* the name called */
    char msg[1024];       /* why, when exit != EXIT_OK */
    sl_value ret;         /* the result when EXIT_OK; valid until the sandbox's next call */
} call_result;

/* Calls NAME with textual args typed from the guest's signature; prints
 * nothing. */
void guest_call(cli_guest *g, const char *name, int argc, char **argv, call_result *r);
/* {"ok":true,["command":command,]"function":..,"type":..,"value":..} or the
 * error object (with "exit" when exit_too) on stdout. */
void json_call_result(const call_result *r, const char *command, int exit_too);

/* Calls NAME with textual args typed from the guest's signature. On success
 * prints the result on stdout (void: "ok" if void_text, else nothing) and
 * returns 0; otherwise prints "<errprefix><reason>" on errfd and returns
 * EXIT_USAGE (wrong count or unparsable argument) or EXIT_FAIL (no such
 * function, or the call failed). */
int guest_call_text(cli_guest *g, const char *name, int argc, char **argv, int errfd,
                    const char *errprefix, int void_text);

/* ----------------------------------------------------------------- snap.c */

/* 1 when this build has the snapshot-file API. */
int snapfile_available(void);
/* Loads a snapshot file into a new ready sandbox. */
int snapfile_open_sandbox(sl_sandbox **out, const char *path, char *err, size_t errlen);
/* Saves snap to path (atomically), with a progress line on a terminal
 * unless quiet. Returns 0 or a negative SL_E*. */
int snapfile_save(sl_snapshot *snap, const char *path, int quiet, char *err, size_t errlen);
int cmd_snapshot(int argc, char **argv);

/* ------------------------------------------------------------- snapdiff.c */

/* `snapshot diff` with argv[0] "diff"; usage prints the snapshot commands'
 * help on fd. Returns the exit code. */
int snap_diff(int argc, char **argv, void (*usage)(int fd));

/* ------------------------------------------------------------- commands */

int cmd_call(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_shell(int argc, char **argv);

/* Splits a shell line into words: blanks separate, "..." quotes with \" and
 * \\ escapes. Returns the word count, or -1 with a reason in why. The words
 * point into the malloc'd *store. */
int shell_split(const char *line, char ***words, char **store, char *why, size_t whylen);

/* ------------------------------------------------------------------ lab.c */

typedef struct lab_req {
    const char *adds[8]; /* files the command reads; adds[0] is the guest (the
                          * parent files of child snapshot files go in too) */
    size_t nadds;
    int capture_stdin;   /* pass our stdin through a temp file (1), and as a shell script (2) */
    const char *collect; /* a file the command writes, or NULL */
} lab_req;

/* The whole command line, kept by main() for the re-execution. */
extern int cli_argc;
extern char **cli_argv;

/* Set when the command ran in the KVM lab and the lab itself did not fail:
 * whatever the inner sandlet printed (its JSON too) came back. */
extern int lab_inner_ran;
/* The kvm-lab script this sandlet would use, in buf: $SANDLET_KVM_LAB, else
 * <exe>/../scripts/kvm-lab (a checkout), else <exe>/../lib/sandlet/kvm-lab
 * (installed). Returns 0 when it is executable, -1 otherwise (buf then holds
 * the last place looked at, or "" when the executable cannot be found). */
int lab_find(char *buf, size_t len);
/* sl_backend_probe, except that SANDLET_FORCE_LAB=1 answers "lab". */
const char *cli_backend(unsigned arch, char *why, size_t len);
/* `sandlet backend [amd64|i686|FILE]`: prints kvm, pvm or lab. */
int cmd_backend(int argc, char **argv);

/* A request for a command on GUEST: the guest and its init data, if any. */
void lab_req_guest(lab_req *req, const char *guest, const cli_opts *o);
/* Decides whether to run in the KVM lab. Returns -1 to continue natively,
 * otherwise the exit code to exit with (the lab ran, or failed). */
int lab_maybe_reexec(const lab_req *req);
/* Inside the lab: create the parent directories of a file we will write
 * (the lab's RAM disk only has the directories that were added). */
void lab_prepare_output(const char *path);

/* ------------------------------------------------------------ labchain.c */

/* The parent files of the child snapshot file at path, nearest first, as
 * sl_snapshot_load_chain would find them without an explicit list (next to
 * each child, then $SANDLET_SNAPSHOT_PATH): at most max paths into out
 * (malloc'd), their number returned; 0 for anything that does not load as
 * a child. For the lab to copy them in. */
size_t lab_chain_files(const char *path, char **out, size_t max);

#endif

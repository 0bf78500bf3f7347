/* `sandlet snapshot save|inspect|verify|flatten|diff` and the glue to the
 * snapshot-file functions of sandlet.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "regfile.h"

extern const char EXIT_HELP[];

/* ------------------------------------------------------ snapshot-file glue */

int snapfile_available(void)
{
    return 1;
}

int snapfile_open_sandbox(sl_sandbox **out, const char *path, char *err, size_t errlen)
{
    sl_snapshot *snap;
    *out = NULL;
    int rc = sl_snapshot_load(&snap, path, err, errlen);
    if (rc != 0)
        return rc;
    rc = sl_sandbox_new_from_snapshot(out, snap, err, errlen);
    sl_snapshot_free(snap); /* the sandbox holds its own reference */
    return rc;
}

int snapfile_save(sl_snapshot *snap, const char *path, int quiet, char *err, size_t errlen)
{
    progress p;
    progress_init(&p, "saving", path, quiet);
    int rc = sl_snapshot_save_progress(snap, path, p.enabled ? progress_update : NULL, &p, err, errlen);
    progress_end(&p);
    return rc;
}

/* Writes snap to path as a child of the snapshot file parent. */
static int snapfile_save_child(sl_snapshot *snap, const char *parent, const char *path, int quiet, char *err,
                               size_t errlen)
{
    progress p;
    progress_init(&p, "saving", path, quiet);
    int rc = sl_snapshot_save_child(snap, parent, path, p.enabled ? progress_update : NULL, &p, err, errlen);
    progress_end(&p);
    return rc;
}

/* Verifies path and, for a child, every file of its chain (parents: the
 * ':'-separated places to look first, or NULL). */
static int snapfile_verify(const char *path, const char *parents, int quiet, char *err, size_t errlen)
{
    progress p;
    progress_init(&p, "verifying", path, quiet);
    int rc = sl_snapshot_verify_chain(path, parents, p.enabled ? progress_update : NULL, &p, err, errlen);
    progress_end(&p);
    return rc;
}

static void inspect_line(void *user, const char *text)
{
    (void)user;
    out_printf(1, "%s\n", text);
}

static int snapfile_inspect(const char *path, int json, char *err, size_t errlen)
{
    if (!json)
        return sl_snapshot_inspect(path, inspect_line, NULL, err, errlen);
    char *doc;
    int rc = sl_snapshot_inspect_json(path, &doc, err, errlen);
    if (rc != 0)
        return rc;
    /* The library's object, with our "ok" and "file" first. */
    jw w = {0};
    jw_open(&w, NULL, '{');
    jw_bool(&w, "ok", 1);
    jw_str(&w, "file", path);
    if (doc[0] == '{' && doc[1] != '}' && !w.oom)
        out_printf(1, "%s,%s\n", w.p, doc + 1);
    else
        out_printf(1, "%s}\n", w.p ? w.p : "{\"ok\":true");
    free(w.p);
    free(doc);
    return 0;
}

/* {"ok":false,"file":..,"error":..,"code":..,"exit":..} for inspect and verify. */
static void file_json_error(const char *file, const char *msg, int code, int exit_code)
{
    json_error_files("file", file, NULL, NULL, msg, code, exit_code);
}

/* ---------------------------------------------------------------- commands */

static void snap_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet snapshot save [OPTIONS] [--parent P | --full] GUEST FILE\n"
               "                             [--call NAME [ARGS...]]...\n"
               "       sandlet snapshot inspect [--json] FILE\n"
               "       sandlet snapshot verify [--json] [--quiet] [--parent LIST] FILE\n"
               "       sandlet snapshot flatten [--quiet] [--parent LIST] CHILD OUT\n"
               "       sandlet snapshot diff [--json] [--parent LIST] A B\n"
               "save     creates a sandbox from GUEST (ELF or snapshot file), runs init, then each\n"
               "         --call in order (results on stdout), takes a snapshot and writes it to\n"
               "         FILE atomically. A --call's arguments run up to the next --call, so\n"
               "         put OPTIONS before the first --call. With --init-data the\n"
               "         snapshot holds FILE's bytes (build/guests/sqlite: its database).\n"
               "         FILE is a child file (only the pages its parent file lacks) of the\n"
               "         snapshot file P with --parent P, and of GUEST when GUEST is a\n"
               "         snapshot file; --full writes every page. The parent file must stay:\n"
               "         a child is loaded with its parent (docs/snapshot-format.md).\n"
               "inspect  prints the header fields, the identity, the blob section, the sizes,\n"
               "         page counts by kind, address spaces and the guest's address map.\n"
               "verify   checks every field and recomputes the identity, of a child file and\n"
               "         of every file of its chain: exit 0 when intact, 4 with the reason\n"
               "         otherwise (3 when a file cannot be read or a parent is missing).\n"
               "flatten  writes the snapshot of CHILD (a child file with its chain, or any\n"
               "         snapshot file) to OUT as a full file: the same identity, no parent\n"
               "         file needed. Exit 3 when a file cannot be read or written.\n"
               "diff     lists what differs between snapshot files A and B, by address space\n"
               "         and guest virtual range: pages added (in B only), removed (in A only),\n"
               "         changed (other contents) or with other permissions, then a summary.\n"
               "         Exit 0 when nothing differs, 1 when something does, 3 when a file\n"
               "         cannot be read or compared.\n"
               "--parent LIST  where to look first for the parent files of a child: files and\n"
               "         directories separated by ':'; then the child's own directory, then\n"
               "         $SANDLET_SNAPSHOT_PATH (same syntax).\n"
               "--json   inspect, verify and diff print one JSON object on stdout (docs/cli.md),\n"
               "         failures included ({\"ok\":false,...}, same exit status).\n"
               "save, verify and flatten of large files show their progress on a terminal\n"
               "(stderr); --quiet turns that off. inspect, verify, flatten and diff never need\n"
               "KVM; save does (the KVM lab otherwise).\n");
    out_printf(fd, "%s%s", OPT_HELP, EXIT_HELP);
}

typedef struct save_call {
    int first, count; /* argv index of NAME, number of words (NAME + ARGS) */
} save_call;

/* `snapshot save`'s command line. */
typedef struct save_args {
    cli_opts o;
    const char *pos[2]; /* GUEST, FILE */
    int npos;
    const char *parent; /* --parent P, or NULL */
    int full;           /* --full */
    save_call *calls; /* the --call groups, in order */
    size_t ncalls;
} save_args;

/* OPTIONS GUEST FILE, up to the first --call. Returns the index of that
 * --call (argc when there is none), or -1 after printing why. */
static int save_operands(save_args *a, int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--call") == 0)
            break;
        if (strcmp(argv[i], "--") == 0) {
            cli_err("snapshot save: unexpected --");
            return -1;
        }
        if (strcmp(argv[i], "--full") == 0) {
            a->full = 1;
            continue;
        }
        const char *v;
        int r = opt_string("--parent", argc, argv, &i, &v);
        if (r < 0)
            return -1;
        if (r) {
            if (a->parent || !*v) {
                cli_err("snapshot save: %s", a->parent ? "--parent given twice" : "--parent: an empty file name");
                return -1;
            }
            a->parent = v;
            continue;
        }
        r = opt_take(&a->o, argc, argv, &i);
        if (r == EXIT_USAGE)
            return -1;
        if (r == 1)
            continue;
        if (a->npos == 2) {
            cli_err("snapshot save: unexpected argument '%s'", argv[i]);
            return -1;
        }
        a->pos[a->npos++] = argv[i];
    }
    return i;
}

/* The --call NAME ARGS... groups from argv[i] on, each up to the next
 * --call. Returns 0, or -1 after printing why. */
static int save_calls(save_args *a, int argc, char **argv, int i)
{
    while (i < argc) {
        int start = ++i;
        while (i < argc && strcmp(argv[i], "--call") != 0)
            i++;
        if (i == start) {
            cli_err("snapshot save: --call needs a function NAME");
            return -1;
        }
        a->calls[a->ncalls].first = start;
        a->calls[a->ncalls++].count = i - start;
    }
    return 0;
}

/* 1 when both paths name one existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Returns -1 when the command line asks for a save, else the exit code
 * (usage printed). */
static int save_parse(save_args *a, int argc, char **argv)
{
    int i = save_operands(a, argc, argv);
    if (i < 0 || save_calls(a, argc, argv, i) != 0)
        goto usage;
    if (a->o.help) {
        snap_usage(1);
        return EXIT_OK;
    }
    if (opt_finish(&a->o) != 0)
        goto usage;
    if (a->npos != 2) {
        cli_err("snapshot save: GUEST and FILE are required");
        goto usage;
    }
    if (a->parent && a->full) {
        cli_err("snapshot save: --parent and --full exclude each other");
        goto usage;
    }
    /* The rename would replace the parent with its own child, which names
     * the parent's identity: a file nothing could load any more. */
    if (a->parent && same_file(a->parent, a->pos[1])) {
        cli_err("snapshot save: FILE %s is the parent file itself (save the child elsewhere, or --full)", a->pos[1]);
        goto usage;
    }
    return -1;
usage:
    snap_usage(2);
    return EXIT_USAGE;
}

/* Takes the guest's snapshot and writes it to file: a child of parent
 * when that is not NULL. A parent picked for the user (autop: the GUEST
 * file the sandbox ran on) gives way to a full file when the snapshot is
 * that file's (nothing changed: a file cannot be its own child) and when
 * the chain would be too deep. */
static int save_snapshot(cli_guest *g, const char *file, const char *parent, int autop, int quiet)
{
    sl_snapshot *snap;
    char err[ERR_MAX] = "";
    if (sl_sandbox_snapshot(g->sb, &snap) != 0) {
        cli_err("snapshot: %s", sl_sandbox_errmsg(g->sb));
        return EXIT_FAIL;
    }
    uint8_t self[32], ran_on[32];
    sl_snapshot_id(snap, self);
    if (autop && sl_snapshot_parent_id(snap, ran_on) == 0 && memcmp(self, ran_on, sizeof self) == 0)
        parent = NULL;
    int rc = EXIT_OK;
    lab_prepare_output(file);
    int src = parent ? snapfile_save_child(snap, parent, file, quiet, err, sizeof err)
                     : snapfile_save(snap, file, quiet, err, sizeof err);
    if (src == SL_ERANGE && parent && autop) {
        out_printf(2, "sandlet: %s: %s; saving it in full\n", file, err[0] ? err : sl_strerror(src));
        parent = NULL;
        err[0] = 0;
        src = snapfile_save(snap, file, quiet, err, sizeof err);
    }
    if (src != 0) {
        cli_errc(src, "%s: %s", file, err[0] ? err : sl_strerror(src));
        rc = EXIT_SETUP;
    } else {
        char id[65];
        sl_snapshot_id_hex(snap, id);
        if (parent)
            out_printf(2, "sandlet: saved %s (id %s), child of %s\n", file, id, parent);
        else
            out_printf(2, "sandlet: saved %s (id %s)\n", file, id);
    }
    sl_snapshot_free(snap);
    return rc;
}

/* The save itself, here: init, the calls in order, the snapshot file. */
static int save_here(const save_args *a, char **argv)
{
    if (!snapfile_available()) {
        cli_err("snapshot save: snapshot files are not supported by this build");
        return EXIT_SETUP;
    }
    cli_guest g;
    int rc = guest_open(&g, a->pos[0], &a->o);
    if (rc != 0)
        return rc;
    /* A sandbox started from a snapshot file runs on it: the file is the
     * parent unless told otherwise, or unless FILE replaces it (the child
     * would name a file that no longer exists: a full file then). */
    const char *parent = a->parent;
    char why[512];
    int autop = !parent && !a->full && file_is_elf(a->pos[0], why, sizeof why) == 0 &&
                !same_file(a->pos[0], a->pos[1]);
    if (autop)
        parent = a->pos[0];
    for (size_t c = 0; c < a->ncalls && rc == 0; c++)
        rc = guest_call_text(&g, argv[a->calls[c].first], a->calls[c].count - 1, argv + a->calls[c].first + 1, 2,
                             "sandlet: ", 0);
    if (rc == 0)
        rc = save_snapshot(&g, a->pos[1], parent, autop, a->o.quiet);
    guest_close(&g);
    return rc;
}

static int snap_save(int argc, char **argv)
{
    save_args a;
    memset(&a, 0, sizeof a);
    a.calls = calloc((size_t)argc + 1, sizeof *a.calls);
    if (!a.calls) {
        cli_err("out of memory");
        return EXIT_SETUP;
    }
    int rc = save_parse(&a, argc, argv);
    if (rc < 0) {
        lab_req req;
        lab_req_guest(&req, a.pos[0], &a.o);
        if (a.parent) /* the lab adds the parents of child files itself */
            req.adds[req.nadds++] = a.parent;
        req.collect = a.pos[1];
        rc = lab_maybe_reexec(&req);
    }
    if (rc < 0)
        rc = save_here(&a, argv);
    free(a.calls);
    return rc;
}

/* `snapshot verify`'s result: a line, or JSON; the exit code. */
static int verify_report(const char *file, const char *parents, int quiet, int json)
{
    char err[ERR_MAX] = "";
    int rc = snapfile_verify(file, parents, quiet, err, sizeof err);
    /* A missing or different parent is no damage of the file: it cannot be
     * checked here (3), as a file that cannot be read. */
    int exit_code = rc == 0 ? EXIT_OK : rc == SL_ENOMEM || rc == SL_EPARENT ? EXIT_SETUP : EXIT_VERIFY;
    if (json) {
        if (rc != 0) {
            file_json_error(file, err[0] ? err : sl_strerror(rc), rc, exit_code);
        } else {
            jw w = {0};
            jw_open(&w, NULL, '{');
            jw_bool(&w, "ok", 1);
            jw_str(&w, "file", file);
            jw_close(&w, '}');
            jw_emit(&w, 1);
        }
    } else if (rc == 0) {
        out_printf(1, "%s: OK\n", file);
    } else {
        out_printf(1, "%s: FAILED: %s\n", file, err[0] ? err : sl_strerror(rc));
    }
    return exit_code;
}

static int snap_file_cmd(const char *sub, int argc, char **argv)
{
    const char *file = NULL, *parents = NULL, *v;
    int help = 0, json = 0, quiet = 0, bad = 0, r;
    int verify = strcmp(sub, "verify") == 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            quiet = 1;
        } else if (verify && (r = opt_string("--parent", argc, argv, &i, &v)) != 0) {
            bad |= r < 0;
            parents = v;
        } else if (file || (argv[i][0] == '-' && argv[i][1] == '-')) {
            if (!bad)
                cli_err("snapshot %s: unexpected argument '%s'", sub, argv[i]);
            bad = 1;
        } else {
            file = argv[i];
        }
    }
    if (help) {
        snap_usage(1);
        return EXIT_OK;
    }
    if (!bad && !file) {
        cli_err("snapshot %s: FILE is required", sub);
        bad = 1;
    }
    if (bad) {
        snap_usage(2);
        if (json) {
            int code;
            const char *msg = cli_last_err(&code);
            file_json_error(file, msg, code, EXIT_USAGE);
        }
        return EXIT_USAGE;
    }
    /* An unreadable file, or one that is not a regular file, is exit 3, not
     * a damaged snapshot. */
    sl_errbuf fe;
    int fd = sl_open_regular(file, "snapshot file", &fe);
    if (fd < 0) {
        cli_errc(fd, "%s", fe.msg);
        if (json)
            file_json_error(file, fe.msg, fd, EXIT_SETUP);
        return EXIT_SETUP;
    }
    close(fd);
    if (verify)
        return verify_report(file, parents, quiet, json);
    char err[ERR_MAX] = "";
    int rc = snapfile_inspect(file, json, err, sizeof err);
    if (rc != 0) {
        cli_errc(rc, "%s: %s", file, err[0] ? err : sl_strerror(rc));
        if (json)
            file_json_error(file, err[0] ? err : sl_strerror(rc), rc, EXIT_SETUP);
        return EXIT_SETUP;
    }
    return EXIT_OK;
}

/* `snapshot flatten [--quiet] [--parent LIST] CHILD OUT`: CHILD with its
 * chain, written to OUT as a full file. The identity names the memory image,
 * not the file's kind, so OUT has CHILD's. */
static int snap_flatten(int argc, char **argv)
{
    pair_args a;
    opt_pair("flatten", "--quiet", "-q", argc, argv, &a);
    const char **pos = a.pos, *parents = a.parents;
    int quiet = a.flag, bad = a.bad;
    if (a.help) {
        snap_usage(1);
        return EXIT_OK;
    }
    if (!bad && a.npos != 2) {
        cli_err("snapshot flatten: CHILD and OUT are required");
        bad = 1;
    }
    if (bad) {
        snap_usage(2);
        return EXIT_USAGE;
    }
    /* A FIFO or a device is refused before load could block on it. */
    sl_errbuf fe;
    int fd = sl_open_regular(pos[0], "snapshot file", &fe);
    if (fd < 0) {
        cli_errc(fd, "%s", fe.msg);
        return EXIT_SETUP;
    }
    close(fd);
    char err[ERR_MAX] = "";
    sl_snapshot *snap;
    int rc = sl_snapshot_load_chain(&snap, pos[0], parents, err, sizeof err);
    if (rc != 0) {
        cli_errc(rc, "%s: %s", pos[0], err[0] ? err : sl_strerror(rc));
        return EXIT_SETUP;
    }
    /* Over CHILD itself is fine: the loaded chain stays on the old file. */
    rc = snapfile_save(snap, pos[1], quiet, err, sizeof err);
    if (rc != 0) {
        cli_errc(rc, "%s: %s", pos[1], err[0] ? err : sl_strerror(rc));
    } else {
        char id[65];
        sl_snapshot_id_hex(snap, id);
        out_printf(2, "sandlet: saved %s (id %s), flattened from %s\n", pos[1], id, pos[0]);
    }
    sl_snapshot_free(snap);
    return rc ? EXIT_SETUP : EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
    if (argc < 2) {
        cli_err("snapshot: save, inspect, verify, flatten or diff?");
        snap_usage(2);
        return EXIT_USAGE;
    }
    int json = json_wanted(argc, argv);
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        snap_usage(1);
        return EXIT_OK;
    }
    if (strcmp(sub, "save") == 0)
        return snap_save(argc - 1, argv + 1);
    if (strcmp(sub, "inspect") == 0 || strcmp(sub, "verify") == 0)
        return snap_file_cmd(sub, argc - 1, argv + 1);
    if (strcmp(sub, "flatten") == 0)
        return snap_flatten(argc - 1, argv + 1);
    if (strcmp(sub, "diff") == 0)
        return snap_diff(argc - 1, argv + 1, snap_usage);
    cli_err("snapshot: unknown subcommand '%s' (save, inspect, verify, flatten or diff)", sub);
    snap_usage(2);
    if (json) {
        int code;
        json_error(NULL, NULL, cli_last_err(&code), 0, EXIT_USAGE);
    }
    return EXIT_USAGE;
}

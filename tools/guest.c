/* Opening a guest and calling it with textual arguments. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "regfile.h"

int file_is_elf(const char *path, char *why, size_t whylen)
{
    sl_errbuf e;
    int fd = sl_open_regular(path, "file", &e);
    if (fd < 0) {
        snprintf(why, whylen, "%s", e.msg);
        return fd;
    }
    unsigned char m[4];
    ssize_t n;
    do
        n = read(fd, m, sizeof m);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (n < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(saved));
        return SL_EIO;
    }
    return n == 4 && memcmp(m, "\x7f" "ELF", 4) == 0;
}

/* The CLI's built-in host function: HostUpper(string) -> string, ASCII
 * uppercase. The result lives in g->upper_buf until the next host call. */
static int host_upper(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err,
                      size_t errlen)
{
    cli_guest *g = user;
    if (nargs != 1 || args[0].type != SL_TYPE_STRING) {
        snprintf(err, errlen, "HostUpper takes one string");
        return -1;
    }
    size_t n = args[0].v.buf.len;
    if (n + 1 > g->upper_cap) {
        char *p = realloc(g->upper_buf, n + 1);
        if (!p) {
            snprintf(err, errlen, "HostUpper: out of memory");
            return -1;
        }
        g->upper_buf = p;
        g->upper_cap = n + 1;
    }
    const unsigned char *s = args[0].v.buf.ptr;
    for (size_t i = 0; i < n; i++)
        g->upper_buf[i] = (char)toupper(s[i]);
    g->upper_buf[n] = 0;
    ret->type = SL_TYPE_STRING;
    ret->v.buf.ptr = g->upper_buf;
    ret->v.buf.len = n;
    return 0;
}

static void print_guest(void *user, int level, const char *msg, size_t len)
{
    (void)user;
    static const char *const names[] = {"", "error", "warn", "info", "debug"};
    /* Drop one trailing newline: we add our own. */
    if (len && msg[len - 1] == '\n')
        len--;
    if (level == SL_LOG_PRINT || level < 1 || level > 4)
        out_printf(2, "[guest] %.*s\n", (int)(len > 1u << 20 ? 1u << 20 : len), msg);
    else
        out_printf(2, "[guest %s] %.*s\n", names[level], (int)(len > 1u << 20 ? 1u << 20 : len), msg);
}

/* What the guest writes to its stdout and stderr goes to ours (framed in the lab). */
static void write_guest(void *user, int fd, const void *buf, size_t len)
{
    (void)user;
    out_write(fd, buf, len);
}

/* With --json our stdout holds JSON only: the guest's fd 1 goes to stderr. */
static void write_guest_json(void *user, int fd, const void *buf, size_t len)
{
    (void)user, (void)fd;
    out_write(2, buf, len);
}

static void print_quiet(void *user, int level, const char *msg, size_t len)
{
    (void)user, (void)level, (void)msg, (void)len;
}

/* The init data of the options into cfg: FILE's bytes, zero-filled up to
 * --init-data-size. *buf (freed by the caller once the sandbox exists: the
 * library copies the bytes) holds them. Returns 0 or an exit code (message
 * printed). */
static int init_data_load(const cli_opts *o, sl_config *cfg, void **buf)
{
    *buf = NULL;
    uint64_t fsize = 0;
    int fd = -1;
    if (o->init_data_path) {
        sl_errbuf e;
        if ((fd = sl_open_regular(o->init_data_path, "init data file", &e)) < 0) {
            cli_errc(fd, "%s", e.msg);
            return EXIT_SETUP;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            cli_err("%s: %s", o->init_data_path, strerror(errno));
            close(fd);
            return EXIT_SETUP;
        }
        fsize = (uint64_t)st.st_size;
    }
    uint64_t total = o->init_data_size ? o->init_data_size : fsize;
    int rc = 0;
    if (fsize > SL_MAX_MEMORY) {
        cli_err("%s: %llu bytes, over the %llu-byte limit of init data", o->init_data_path,
                (unsigned long long)fsize, (unsigned long long)SL_MAX_MEMORY);
        rc = EXIT_SETUP;
    } else if (total < fsize) {
        cli_err("--init-data-size %llu is smaller than %s (%llu bytes)", (unsigned long long)total,
                o->init_data_path, (unsigned long long)fsize);
        rc = EXIT_USAGE;
    } else if (total > SIZE_MAX || (total && !(*buf = calloc(1, (size_t)total)))) {
        cli_err("out of memory for %llu bytes of init data", (unsigned long long)total);
        rc = EXIT_SETUP;
    }
    /* Reads what the file holds now, up to the size it had: a file that
     * shrinks meanwhile leaves zeros, one that grows is cut. */
    for (uint64_t off = 0; rc == 0 && off < fsize;) {
        ssize_t n = read(fd, (char *)*buf + off, (size_t)(fsize - off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_err("%s: %s", o->init_data_path, strerror(errno));
            rc = EXIT_SETUP;
        }
        if (n <= 0)
            break;
        off += (uint64_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
        return rc;
    }
    cfg->init_data = *buf;
    cfg->init_data_size = total;
    cfg->init_data_perm = o->init_data_perm ? o->init_data_perm : SL_PERM_READ;
    return 0;
}

int guest_open(cli_guest *g, const char *path, const cli_opts *o)
{
    memset(g, 0, sizeof *g);
    g->path = path;
    char err[ERR_MAX] = "";
    char why[512];
    int elf = file_is_elf(path, why, sizeof why);
    if (elf < 0) {
        cli_errc(elf, "%s", why);
        return EXIT_SETUP;
    }
    int rc;
    if (elf) {
        sl_config cfg = o->cfg;
        void *init;
        if ((rc = init_data_load(o, &cfg, &init)) != 0)
            return rc;
        rc = sl_sandbox_new_from_file(&g->sb, path, &cfg, err, sizeof err);
        free(init);
    } else {
        if (!snapfile_available()) {
            cli_err("%s: not an ELF file (snapshot files are not supported by this build)", path);
            return EXIT_SETUP;
        }
        if (o->sizes_given || o->init_given) {
            cli_err("%s: %s options do not apply to a snapshot file (its layout is fixed)", path,
                    o->sizes_given ? "size" : "init-data");
            return EXIT_USAGE;
        }
        rc = snapfile_open_sandbox(&g->sb, path, err, sizeof err);
    }
    if (rc != 0) {
        cli_errc(rc, "%s: %s", path, err[0] ? err : sl_strerror(rc));
        g->sb = NULL;
        return EXIT_SETUP;
    }
    sl_sandbox_set_print(g->sb, o->quiet ? print_quiet : print_guest, g);
    sl_sandbox_set_stdio(g->sb, NULL, o->json ? write_guest_json : write_guest, g);
    sl_sandbox_set_timeout(g->sb, o->timeout_ms);
    /* A sandbox started from a snapshot file is ready at once, but it needs
     * its host functions all the same. */
    static const int str1[] = {SL_TYPE_STRING};
    rc = sl_sandbox_register(g->sb, "HostUpper", SL_TYPE_STRING, str1, 1, host_upper, g);
    if (rc == 0 && sl_sandbox_status(g->sb) == SL_STATUS_NEW)
        rc = sl_sandbox_init(g->sb);
    if (rc != 0) {
        cli_errc(rc, "%s: %s", path, sl_sandbox_errmsg(g->sb));
        guest_close(g);
        return EXIT_SETUP;
    }
    return 0;
}

void guest_close(cli_guest *g)
{
    sl_sandbox_free(g->sb);
    free(g->upper_buf);
    memset(g, 0, sizeof *g);
}

static void call_fail(call_result *r, int exit_code, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void call_fail(call_result *r, int exit_code, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->exit = exit_code;
    r->code = code;
}

void guest_call(cli_guest *g, const char *name, int argc, char **argv, call_result *r)
{
    memset(r, 0, sizeof *r);
    r->function = name;
    int idx = sl_sandbox_find_function(g->sb, name);
    if (idx < 0) {
        call_fail(r, EXIT_FAIL, SL_ENOTFOUND, "no function '%s' in %s (see `functions` in sandlet shell)", name,
                  g->path);
        return;
    }
    const char *fname;
    int ret_type;
    const int *params;
    size_t np;
    int rc = sl_sandbox_function(g->sb, (size_t)idx, &fname, &ret_type, &params, &np);
    if (rc != 0) {
        call_fail(r, EXIT_FAIL, rc, "%s", sl_sandbox_errmsg(g->sb));
        return;
    }
    r->function = fname;
    char sig[1024];
    signature_format(sig, sizeof sig, fname, ret_type, params, np);
    if ((size_t)argc != np) {
        call_fail(r, EXIT_USAGE, 0, "%s takes %zu argument%s, got %d: %s", fname, np, np == 1 ? "" : "s", argc, sig);
        return;
    }
    sl_value *args = calloc(np ? np : 1, sizeof *args);
    void **stores = calloc(np ? np : 1, sizeof *stores);
    if (!args || !stores) {
        call_fail(r, EXIT_FAIL, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        char why[256];
        if (value_parse(params[i], argv[i], &args[i], &stores[i], why, sizeof why) != 0) {
            call_fail(r, EXIT_USAGE, 0, "argument %zu of %s (%s): %s", i + 1, fname, sl_type_name(params[i]), why);
            goto out;
        }
    }
    rc = sl_sandbox_call(g->sb, fname, args, np, &r->ret);
    if (rc != 0) {
        const char *msg = sl_sandbox_errmsg(g->sb);
        call_fail(r, EXIT_FAIL, rc, "%s: %s", fname, msg && *msg ? msg : sl_strerror(rc));
        goto out;
    }
    r->exit = EXIT_OK;
out:
    if (stores)
        for (size_t i = 0; i < np; i++)
            free(stores[i]);
    free(stores);
    free(args);
}

void json_call_result(const call_result *r, const char *command, int exit_too)
{
    if (r->exit != EXIT_OK) {
        json_error(command, r->function, r->msg, r->code, exit_too ? r->exit : -1);
        return;
    }
    jw w = {0};
    jw_open(&w, NULL, '{');
    jw_bool(&w, "ok", 1);
    if (command)
        jw_str(&w, "command", command);
    jw_str(&w, "function", r->function);
    jw_value(&w, &r->ret);
    jw_close(&w, '}');
    jw_emit(&w, 1);
}

int guest_call_text(cli_guest *g, const char *name, int argc, char **argv, int errfd,
                    const char *errprefix, int void_text)
{
    call_result r;
    guest_call(g, name, argc, argv, &r);
    if (r.exit != EXIT_OK)
        out_printf(errfd, "%s%s\n", errprefix, r.msg);
    else
        value_print(1, &r.ret, void_text);
    return r.exit;
}

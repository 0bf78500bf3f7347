/* `sandlet call GUEST NAME [ARGS...]` */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

extern const char EXIT_HELP[];

static void call_usage(int fd)
{
    out_printf(fd,
               "usage: sandlet call [OPTIONS] GUEST NAME [ARGS...]\n"
               "Creates a sandbox from GUEST (a guest ELF or a snapshot file), runs its init,\n"
               "calls guest function NAME once and prints the return value on stdout: strings\n"
               "as they are, bytes as hex, bool as true/false, floats with %%g, nothing for void.\n"
               "Each ARG is read as the type of that parameter in the guest's signature:\n"
               "integers in decimal or 0x hex, floats, true/false/1/0, strings as given, bytes\n"
               "as hex. The host function HostUpper(string) -> string is built in.\n"
               "With --init-data the guest gets FILE's bytes (for build/guests/sqlite: the\n"
               "database it opens).\n"
               "With --json, stdout gets one JSON object instead: {\"ok\":true,\"function\":..,\n"
               "\"type\":..,\"value\":..}, or on failure {\"ok\":false,\"error\":..,\"code\":..,\"exit\":..}\n"
               "(same exit status); what the guest writes to its stdout goes to stderr then.\n"
               "Options may appear anywhere; put -- before arguments that start with --.\n");
    out_printf(fd, "%s%s", OPT_HELP, EXIT_HELP);
}

/* The positional arguments, GUEST NAME ARGS...; argv itself stays intact
 * for a lab re-execution. */
typedef struct operands {
    char **v;
    int n;
} operands;

static int add_operand(void *user, char *arg)
{
    operands *p = user;
    p->v[p->n++] = arg;
    return 0;
}

/* Returns -1 when the command line asks for a call, else the exit code
 * (usage printed). */
static int call_args(cli_opts *o, int argc, char **argv, operands *p)
{
    int rc = opt_scan(o, argc, argv, add_operand, p, call_usage);
    if (rc >= 0)
        return rc;
    if (p->n < 2) {
        cli_err("call: GUEST and NAME are required");
        call_usage(2);
        return EXIT_USAGE;
    }
    return -1;
}

/* The call itself, here; *answered is set when --json's object is printed. */
static int call_here(const cli_opts *o, const operands *p, int *answered)
{
    cli_guest g;
    int rc = guest_open(&g, p->v[0], o);
    if (rc != 0)
        return rc;
    if (o->json) {
        call_result r;
        guest_call(&g, p->v[1], p->n - 2, p->v + 2, &r);
        if (r.exit != EXIT_OK)
            cli_errc(r.code, "%s", r.msg);
        json_call_result(&r, NULL, 1);
        *answered = 1;
        rc = r.exit;
    } else {
        rc = guest_call_text(&g, p->v[1], p->n - 2, p->v + 2, 2, "sandlet: ", 0);
    }
    guest_close(&g);
    return rc;
}

int cmd_call(int argc, char **argv)
{
    cli_opts o;
    memset(&o, 0, sizeof o);
    operands p = {calloc((size_t)argc + 1, sizeof *p.v), 0};
    if (!p.v) {
        cli_err("out of memory");
        return EXIT_SETUP;
    }
    int answered = 0;
    int rc = call_args(&o, argc, argv, &p);
    if (rc < 0) {
        lab_req req;
        lab_req_guest(&req, p.v[0], &o);
        rc = lab_maybe_reexec(&req);
    }
    if (rc < 0)
        rc = call_here(&o, &p, &answered);
    /* Every other failure (usage, setup, the lab) answers in JSON too, unless
     * the lab ran us and our inner self answered. */
    if (o.json && rc != EXIT_OK && !o.help && !lab_inner_ran && !answered) {
        int code;
        const char *msg = cli_last_err(&code);
        json_error(NULL, p.n >= 2 ? p.v[1] : NULL, msg, code, rc);
    }
    free(p.v);
    return rc;
}

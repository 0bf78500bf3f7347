/* sandlet — run untrusted code in micro-VMs, snapshot and restore them.
 *
 * The only header a host program includes. Every function returns 0 or a
 * negative SL_E* code; objects keep a message describing their last error
 * (sl_*_errmsg), and sl_strerror() names every code. Handles are opaque and
 * owned by the caller, who frees them with the matching *_free. */
#ifndef SANDLET_H
#define SANDLET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header, the one place it is defined: the Makefile,
 * sandlet.pc and debian/changelog read it (tests/e2e/install.sh checks that
 * they agree). MAJOR is the shared library's soname (libsandlet.so.MAJOR). */
#define SANDLET_VERSION_MAJOR 0
#define SANDLET_VERSION_MINOR 1
#define SANDLET_VERSION_PATCH 0
/* One number that orders versions: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define SANDLET_VERSION_NUMBER \
    (SANDLET_VERSION_MAJOR * 10000 + SANDLET_VERSION_MINOR * 100 + SANDLET_VERSION_PATCH)

/* The version of the library linked at run time, which may differ from the
 * header's when a program runs against a newer shared library: "MAJOR.MINOR.PATCH"
 * (a static string, never NULL) and SANDLET_VERSION_NUMBER's encoding of it.
 * Thread-safe. */
const char *sl_version(void);
unsigned sl_version_number(void);

/* Error codes: X(NAME, value, description) for SL_NAME, the one list that
 * defines each code and what sl_strerror() says of it ("SL_NAME: description"),
 * as libuv's UV_ERRNO_MAP does. The comments say more than the description. */
#define SL_ERROR_MAP(X)                                                                                       \
    X(OK, 0, "success")                                                                                       \
    X(EINVAL, -1, "invalid argument")                                                                         \
    X(ENOMEM, -2, "out of memory")                          /* host memory */                                 \
    X(EIO, -3, "I/O error")                                 /* see the message for errno */                   \
    X(EFORMAT, -4, "malformed input")                       /* an ELF or snapshot file */                     \
    X(EVERSION, -5, "version mismatch")                     /* guest/host or file format */                   \
    X(ERANGE, -6, "size out of range")                      /* a size or count past the limits */             \
    X(EUNSUPPORTED, -7, "not supported")                    /* valid: a relocation type, a large page, ... */ \
    X(EPAGETABLE, -8, "unusable guest page tables")                                                           \
    X(EFAMILY, -9, "snapshot of another configuration family")                                                \
    X(ESTATE, -10, "wrong state")                           /* poisoned, not initialised, ... */              \
    X(EHYPERVISOR, -11, "hypervisor error")                 /* the vCPU backend failed */                     \
    X(EABORT, -12, "guest aborted")                                                                           \
    X(EFAULT, -13, "guest exception")                                                                         \
    X(EMEMACCESS, -14, "memory access violation")           /* a write to read-only snapshot memory */        \
    X(ETIMEOUT, -15, "timed out")                           /* the call ran past its timeout */               \
    X(ECANCELLED, -16, "cancelled")                         /* the call was killed */                         \
    X(ENOTFOUND, -17, "not found")                          /* no such guest function or snapshot */          \
    X(ETYPE, -18, "type mismatch")                          /* of a parameter or return value */              \
    X(EHOSTFN, -19, "host function failed")                                                                   \
    X(EABI, -20, "malformed host/guest message")                                                              \
    X(ENOSCRATCH, -21, "guest out of scratch memory")                                                         \
    X(EHASH, -22, "identity mismatch")                      /* data corrupted */                              \
    X(ENOHYPERVISOR, -23, "no hypervisor available")        /* Linux: /dev/kvm cannot be opened */            \
    X(ECHANGED, -24, "snapshot file changed while loaded")  /* see "snapshot files" */                    \
    X(EPARENT, -25, "parent snapshot missing or different") /* a child file's chain: see "child files" */

#define SL_ERROR_ENUM_(name, value, text) SL_##name = value,
enum { SL_ERROR_MAP(SL_ERROR_ENUM_) };
#undef SL_ERROR_ENUM_
#define SL_EKVM_MISSING SL_ENOHYPERVISOR /* the old name of -23 */

/* Name of an error code ("SL_EINVAL: invalid argument"). Never NULL. */
const char *sl_strerror(int code);

/* Guest architectures (values shared with the snapshot file format). */
#define SL_ARCH_AMD64 1u
#define SL_ARCH_I686 2u

/* Which hypervisor backend would run guests of `arch` (SL_ARCH_*) on this
 * machine, decided the same way by the library, the CLI (`sandlet backend`)
 * and the scripts. The backends this build has:
 *   "kvm"  hardware KVM (VT-x/AMD-V): every architecture;
 *   "pvm"  PVM (kvm_pvm, KVM without hardware virtualization): x86-64 only,
 *          guest code runs at CPL3 on the hardware, the guest kernel is
 *          emulated (docs/decisions.md);
 * and, where no hypervisor here can run them:
 *   "lab"  /dev/kvm is missing or unusable, or the KVM is PVM and `arch` is
 *          i686. Use the KVM lab (scripts/kvm-lab).
 * Never NULL (a static string). When it returns "lab" and why/whylen are
 * given, why receives a one-line reason (NUL-terminated, truncated to
 * whylen). Opens and closes the hypervisor's device; thread-safe. */
const char *sl_backend_probe(unsigned arch, char *why, size_t whylen);

/* Permissions for init data (and region flags in `inspect`). */
#define SL_PERM_READ 1u
#define SL_PERM_WRITE 2u
#define SL_PERM_EXEC 4u
/* Two more bits of a mapped page, only in what sl_snapshot_diff reports
 * (init data takes READ, WRITE and EXEC only): */
#define SL_PERM_USER 8u  /* user mode (the guest program) may touch it, not only the guest kernel */
#define SL_PERM_COW 16u  /* copy-on-write: the guest's first write copies it (WRITE is clear: the
                          * page itself is read-only) */

/* Sandbox memory configuration. Zero fields take the defaults below. Sizes are
 * rounded up to whole 4 KiB pages. The sum may not exceed 16 GiB (on i686 the
 * guest's memory must also fit below 0xFEE00000). */
typedef struct sl_config {
    uint64_t input_size;   /* host -> guest message buffer (default 64 KiB) */
    uint64_t output_size;  /* guest -> host message buffer (default 64 KiB) */
    uint64_t heap_size;    /* guest heap, part of every snapshot (default 1 MiB) */
    uint64_t stack_size;   /* guest stack, mapped on demand, and the function model's call
                            * stack, reserved in scratch (default 256 KiB each) */
    uint64_t scratch_size; /* the only writable guest memory (default 16 MiB) */
    const void *init_data; /* optional bytes mapped into the guest (PEB init data) */
    uint64_t init_data_size;
    unsigned init_data_perm; /* SL_PERM_* (default read-only) */
} sl_config;

#define SL_DEFAULT_IO_SIZE (64u << 10)
#define SL_DEFAULT_HEAP_SIZE (1u << 20)
#define SL_DEFAULT_STACK_SIZE (256u << 10)
#define SL_DEFAULT_SCRATCH_SIZE (16u << 20)
#define SL_MAX_MEMORY (16ull << 30)

/* ------------------------------------------------------------------ values */

/* Parameter and return types: X(NAME, value, name) for SL_TYPE_NAME, the one
 * list of the host's types and their names (sl_type_name). The same numbers
 * travel on the wire (enum sl_type in sandlet_guest.h; the library checks). */
#define SL_TYPE_MAP(X)        \
    X(VOID, 0, "void")        \
    X(I32, 1, "i32")          \
    X(U32, 2, "u32")          \
    X(I64, 3, "i64")          \
    X(U64, 4, "u64")          \
    X(F32, 5, "f32")          \
    X(F64, 6, "f64")          \
    X(STRING, 7, "string")    \
    X(BOOL, 8, "bool")        \
    X(BYTES, 9, "bytes")

#define SL_TYPE_ENUM_(name, value, text) SL_TYPE_##name = value,
enum { SL_TYPE_MAP(SL_TYPE_ENUM_) };
#undef SL_TYPE_ENUM_

/* A typed value. Strings and bytes are (pointer, length); strings need not be
 * NUL-terminated going in, and come back NUL-terminated. Values returned by
 * sl_sandbox_call point into the sandbox and stay valid until its next call,
 * restore or free. */
typedef struct sl_value {
    int type; /* SL_TYPE_* */
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f32;
        double f64;
        int b; /* SL_TYPE_BOOL: 0 or 1 */
        struct {
            const void *ptr;
            size_t len;
        } buf; /* SL_TYPE_STRING and SL_TYPE_BYTES */
    } v;
} sl_value;

/* Name of a type ("i32", "string", ...), or "?" */
const char *sl_type_name(int type);
/* Parses a type name; returns SL_TYPE_* or -1. */
int sl_type_parse(const char *name);

/* --------------------------------------------------------------- snapshots */

typedef struct sl_snapshot sl_snapshot;

/* Snapshots are reference counted: a sandbox keeps the snapshot it runs on
 * alive, so the caller may free its handle at any time. */
void sl_snapshot_free(sl_snapshot *snap);
/* The BLAKE3 identity (32 bytes); two snapshots are equal exactly when their
 * identities are. */
void sl_snapshot_id(const sl_snapshot *snap, uint8_t out[32]);
/* The identity as 64 lowercase hex digits plus NUL. */
void sl_snapshot_id_hex(const sl_snapshot *snap, char out[65]);
/* Lineage: the identity (32 bytes) of the snapshot's parent, the snapshot the
 * sandbox it was taken of ran on: the one that sandbox was started from
 * (sl_sandbox_new_from_snapshot) or last restored to (sl_sandbox_restore).
 * Returns 0 with out filled, or SL_ENOTFOUND (out untouched) when there is
 * none: a snapshot of a sandbox made from an ELF and not restored since
 * (it ran on the snapshot the library made from the ELF, which no caller
 * holds), or one loaded from a version-3 file. Snapshot files keep the
 * parent (format version 4). The parent is not part of the identity: it may
 * even equal it, for a sandbox that changed nothing since. Thread-safe. */
int sl_snapshot_parent_id(const sl_snapshot *snap, uint8_t out[32]);
uint64_t sl_snapshot_generation(const sl_snapshot *snap);
/* Bytes of guest-visible memory and of page tables in the snapshot. */
uint64_t sl_snapshot_memory_size(const sl_snapshot *snap);
uint64_t sl_snapshot_page_table_size(const sl_snapshot *snap);

/* ---------------------------------------------------------------- sandboxes */

typedef struct sl_sandbox sl_sandbox;

/* A host function the guest can call. Fill *ret (type must be the declared
 * return type; strings/bytes must stay valid until the function returns) and
 * return 0, or return non-zero with a message in err[0..errlen) to fail the
 * guest's host call (the guest sees an error; the sandbox stays usable). */
typedef int (*sl_host_fn)(void *user, const sl_value *args, size_t nargs, sl_value *ret, char *err,
                          size_t errlen);

/* Where guest prints and logs go (default: stderr, prefixed "[guest] "). */
typedef void (*sl_print_fn)(void *user, int level, const char *msg, size_t len);

#define SL_STATUS_NEW 0      /* created; host functions may be registered; call sl_sandbox_init */
#define SL_STATUS_READY 1    /* between calls */
#define SL_STATUS_POISONED 2 /* a call failed; restore a snapshot to use it again */

#define SL_LOG_PRINT (-1) /* level passed to sl_print_fn for sl_print() */

/* Creates a sandbox from a guest ELF: a static x86-64 or i686 program (ET_EXEC
 * or static PIE; musl, see docs/guest-runtime.md), which runs in user mode
 * above sandlet's guest kernel. cfg may be NULL for defaults. On failure *out is NULL and err (if not NULL) holds the
 * reason. */
int sl_sandbox_new_from_file(sl_sandbox **out, const char *elf_path, const sl_config *cfg, char *err,
                             size_t errlen);
int sl_sandbox_new_from_elf(sl_sandbox **out, const void *elf, size_t len, const sl_config *cfg,
                            char *err, size_t errlen);
/* A new sandbox that starts from `snap` (made by any sandbox or loaded from a
 * file) without the ELF and without running init: ready to call. SL_ECHANGED
 * when snap was loaded from a file that has changed since (see "snapshot
 * files" below). */
int sl_sandbox_new_from_snapshot(sl_sandbox **out, sl_snapshot *snap, char *err, size_t errlen);
void sl_sandbox_free(sl_sandbox *sb);

/* The message of the last failed operation on sb. */
const char *sl_sandbox_errmsg(const sl_sandbox *sb);
int sl_sandbox_status(const sl_sandbox *sb);

/* Registers a host function. Usually done before sl_sandbox_init (the guest
 * may call host functions during init); allowed at any time between calls,
 * e.g. on a sandbox created from a snapshot. */
int sl_sandbox_register(sl_sandbox *sb, const char *name, int ret_type, const int *param_types,
                        size_t nparams, sl_host_fn fn, void *user);
void sl_sandbox_set_print(sl_sandbox *sb, sl_print_fn fn, void *user);
/* Per-call timeout in milliseconds (0 = none, the default). */
void sl_sandbox_set_timeout(sl_sandbox *sb, uint64_t ms);

/* Runs the guest's init; afterwards the sandbox is ready for calls. */
int sl_sandbox_init(sl_sandbox *sb);

/* Calls guest function `name`. Argument types must match the guest's
 * signature (SL_ETYPE otherwise). On a guest fault, abort, timeout or kill the
 * sandbox becomes POISONED until a restore. When the sandbox runs on a
 * snapshot loaded from a file, the file is checked before and after the call
 * (one fstat each, about 0.3 us): if it changed (truncated, rewritten), the
 * call fails with SL_ECHANGED, whatever the guest did, and the sandbox is
 * POISONED; restore another snapshot. sl_sandbox_init and sl_sandbox_run do
 * the same. */
int sl_sandbox_call(sl_sandbox *sb, const char *name, const sl_value *args, size_t nargs, sl_value *ret);

/* The guest's registered functions. */
size_t sl_sandbox_function_count(const sl_sandbox *sb);
/* Fills the i-th function's signature; params points into the sandbox. */
int sl_sandbox_function(const sl_sandbox *sb, size_t i, const char **name, int *ret_type,
                        const int **param_types, size_t *nparams);
/* Looks a function up by name; returns its index or SL_ENOTFOUND. */
int sl_sandbox_find_function(const sl_sandbox *sb, const char *name);

/* ------------------------------------------------ standard streams, programs
 * A guest is an ordinary program on musl: what it writes to fds 1 and 2 and
 * reads from fd 0 goes through these callbacks, in the function model and
 * when it runs as a program (sl_sandbox_run). */

/* Called with the bytes of each write(2) to fd 1 (stdout) or 2 (stderr), as
 * the guest makes them (a large write arrives in pieces of at most the output
 * buffer's size). Default: the bytes go to the host's fd 1 / 2 unchanged. */
typedef void (*sl_write_fn)(void *user, int fd, const void *buf, size_t len);
/* Called when the guest reads fd 0: fill buf[0..cap) and return the number
 * of bytes (cap <= the input buffer's size), 0 at end of input, or a negative
 * errno the guest's read(2) then returns. Default: end of input at once. */
typedef long (*sl_read_fn)(void *user, void *buf, size_t cap);
/* Sets either callback (NULL keeps the default). Between calls only. */
void sl_sandbox_set_stdio(sl_sandbox *sb, sl_read_fn read, sl_write_fn write, void *user);

/* The program's argv and environment ("NAME=VALUE" strings), copied: used
 * by sl_sandbox_run and by sl_sandbox_init (a function-model guest reads the
 * environment with getenv; the library's main() ignores argv). Without it argv is {"guest"} and the environment is empty.
 * SL_EINVAL for NULL strings, SL_ERANGE when they do not fit the input
 * buffer (sl_config.input_size) or exceed 4096 strings. Before init only. */
int sl_sandbox_set_args(sl_sandbox *sb, size_t argc, const char *const *argv, size_t envc,
                        const char *const *envp);

/* How a program ended (sl_sandbox_run). */
typedef struct sl_run_result {
    int exit_status; /* exit(2) status 0..255; 128 + signal when killed */
    int signal;      /* the signal that ended it (abort(3): 6), else 0 */
} sl_run_result;

/* Runs the guest as a program, from its entry point until it exits, with the
 * arguments of sl_sandbox_set_args and the standard streams above. Returns 0
 * when the program exited (any status) or died of a signal it sent itself,
 * with *res filled; otherwise the error of a failed call: SL_EFAULT (guest
 * exception: crash), SL_ETIMEOUT (sl_sandbox_set_timeout, counted for the
 * whole run), SL_ECANCELLED (sl_sandbox_kill), SL_ENOSCRATCH (the sandbox's
 * memory, sl_config.scratch_size, is exhausted), SL_EABORT, SL_EABI. Only on
 * a NEW sandbox made from an ELF; afterwards it is POISONED (the program has
 * ended): free it. A function-model guest (sandlet_main) finishes init
 * instead of exiting: SL_ESTATE. */
int sl_sandbox_run(sl_sandbox *sb, sl_run_result *res);

/* Runs the program at `path` once: sl_sandbox_new_from_file + set_args +
 * set_stdio + set_timeout (ms, 0 = none) + sl_sandbox_run + free. Returns
 * what sl_sandbox_run returns, or the creation error, with the message in
 * err[0..errlen). cfg may be NULL: programs get SL_RUN_DEFAULT_SCRATCH bytes
 * of scratch (their memory: heap, stack, mmap) then. */
#define SL_RUN_DEFAULT_SCRATCH (256u << 20)
typedef struct sl_run_opts {
    size_t argc;
    const char *const *argv; /* argv[0] is the name the program sees */
    size_t envc;
    const char *const *envp;
    const sl_config *cfg;
    uint64_t timeout_ms;
    sl_read_fn read;   /* NULL: end of input */
    sl_write_fn write; /* NULL: the host's stdout/stderr */
    void *user;
} sl_run_opts;
int sl_run_file(const char *path, const sl_run_opts *opts, sl_run_result *res, char *err, size_t errlen);

/* Takes a snapshot of the sandbox between calls. SL_ECHANGED (and POISONED)
 * when it runs on a loaded file that changed before or while it was read.
 *
 * Cost. When the sandbox runs on a snapshot P (it was started from P or
 * last restored to it) and the guest since wrote into pages it had,
 * mapped new ones or dropped some, the take is incremental: it reads the
 * page-table pages the guest wrote, copies and hashes only the changed
 * pages (hundreds of them on threads created and joined inside the call,
 * one per 128 pages and per CPU, which take no signal but those their own
 * faults raise), and shares the rest of P's memory copy-on-write, in time
 * that follows the pages changed, not P's size. The snapshot is byte for byte
 * the one a full take makes (same identity, same file when saved). The
 * first incremental take on a P that was not itself taken incrementally
 * first learns P: about the cost of a full take, once per P, plus a copy
 * of P's memory (in a memfd: one descriptor) that lives while P or any
 * snapshot taken on its line does; freeing P itself (a loaded file, say)
 * releases P's own memory and file. Other takes (the
 * guest restructured its page tables, a new address space, P's memory
 * would shrink, a sandbox made from an ELF) compact all of its memory,
 * with the identity hashed on threads as sl_snapshot_verify_file's is.
 * Pages are copied into the new snapshot with process_vm_writev(2) on the
 * calling process (no privilege needed; it spares a page fault per page);
 * where a seccomp filter refuses it with an error, plain copies are
 * used, but a filter that kills the process on that call must allow it.
 * Thread-safe for sandboxes on one P in several threads. */
int sl_sandbox_snapshot(sl_sandbox *sb, sl_snapshot **out);
/* Restores a snapshot of the same configuration family in place (SL_EFAMILY
 * otherwise). Cost follows the pages the guest dirtied since the last restore.
 * SL_ECHANGED when snap was loaded from a file that has changed since: the
 * sandbox is left as it was, or POISONED when it ran on snap itself or the
 * file changed during the restore. */
int sl_sandbox_restore(sl_sandbox *sb, sl_snapshot *snap);
/* A restore to a snapshot of another program asks the guest for its
 * functions (one internal call), and a restore to an initialise snapshot runs
 * init. A kill that lands during the former is discarded like any kill before
 * the restore (the question is asked again; SL_ECANCELLED, POISONED, only
 * when kills keep coming); during init it cancels init (SL_ECANCELLED,
 * POISONED). A snapshot may be used by any number of sandboxes, in any
 * threads, at once; it lives until its last user frees it. */
/* The generation the guest sees: that of the snapshot last taken or restored. */
uint64_t sl_sandbox_generation(const sl_sandbox *sb);

/* Stops the running call (thread-safe; from any thread). The call returns
 * SL_ECANCELLED; if no call runs, the next one is cancelled at once, unless a
 * restore comes first (a restore clears a pending kill, and one that lands
 * while it runs: see sl_sandbox_restore). Every other function
 * on one sandbox must be called from one thread at a time; different
 * sandboxes are independent. */
void sl_sandbox_kill(sl_sandbox *sb);

typedef struct sl_sandbox_info {
    unsigned arch;           /* SL_ARCH_* */
    const char *backend;     /* the hypervisor backend: "kvm" or "pvm" (sl_backend_probe) */
    uint64_t scratch_size, heap_size, input_size, output_size, stack_size;
    uint64_t snapshot_memory; /* guest-visible bytes of the snapshot it runs on */
    uint64_t dirty_pages;     /* scratch pages written since the last restore */
    uint64_t scratch_pages_used; /* pages the guest took from the scratch allocator */
    uint64_t resident_pages;  /* scratch pages that hold host memory: written by the guest or
                               * by sandlet (page tables, bookkeeping) since the sandbox was
                               * made. The sandbox's private memory; the snapshot's pages are
                               * mapped from it (or its file) and shared, and are not counted.
                               * Costs one mincore() per 16 MiB of scratch. */
    uint64_t generation;
    int status;
    /* Events since the last restore that decide the cost of a call on
     * a hardware hypervisor (counted the same on every backend): */
    uint64_t exits;          /* VM exits (the hypervisor's run call returning), by reason below */
    uint64_t exits_io, exits_mmio, exits_other;
    uint64_t ioctls;         /* calls into the hypervisor (KVM ioctls) issued for this sandbox */
    uint64_t guest_faults;   /* page faults the guest kernel handled */
    uint64_t cow_copies;     /* copy-on-write copies the guest kernel made */
    uint64_t demand_pages;   /* zero pages the guest kernel mapped (stack growth, mmap,
                              * mremap, mprotect, madvise) */
    uint64_t syscalls;       /* system calls the guest kernel served */
    uint64_t emulated;       /* instructions the hypervisor emulated: on PVM every
                              * instruction of the guest kernel (CPL0); 0 where the
                              * hypervisor does not report it (KVM: binary statistics) */
} sl_sandbox_info;
int sl_sandbox_info_get(sl_sandbox *sb, sl_sandbox_info *info);

/* ----------------------------------------------------- snapshot files
 * (format: docs/snapshot-format.md). Messages go to err[0..errlen) when err
 * is not NULL.
 *
 * A loaded snapshot maps its file: the file must not change while the
 * snapshot is alive (docs/snapshot-format.md §8, "While loaded"). Replacing
 * it is fine: a rename over the path (what sl_snapshot_save does) or an
 * unlink leaves the loaded snapshot on the old file, unchanged. Writing to
 * it, truncating it or extending it is a change. sandlet detects a change
 * of the file's size or modification time (and a status-change time that
 * moved without a rename, link or chmod) at every use of the snapshot:
 * restores to it, sandboxes made from it, calls of a sandbox running on it
 * (before and after each), snapshots taken there, saves of it. Once seen,
 * every such use fails with SL_ECHANGED and a message naming the file, also
 * in other threads; free the snapshot and load the file again. A host read
 * of a page the file lost never kills the process: sandlet installs a
 * SIGBUS handler at the first load (it passes every other SIGBUS on to the
 * handler that was there before; a handler installed later must do the
 * same, and no thread that uses sandlet may block SIGBUS). A sandbox that
 * was running on the file needs a restore to another snapshot. Guests never
 * see a change silently: a call during which the file changed fails. */

/* Writes snap to path atomically: a temporary file in the same directory is
 * written, fsync'ed and renamed over path, then the directory is fsync'ed. On
 * failure nothing exists under path that was not there before. SL_ECHANGED
 * when snap was loaded from a file that changed (before or while it was
 * read). */
int sl_snapshot_save(const sl_snapshot *snap, const char *path, char *err, size_t errlen);
/* Validates every header field, then maps the file read-only (MAP_PRIVATE):
 * O(1) in the file size, the blob is neither read nor hashed (use
 * sl_snapshot_verify_file for that). Every file with the same architecture
 * and configuration sizes loads into one configuration family, so a sandbox
 * started from one such file can restore any other. The file must not be
 * modified or truncated while the snapshot is alive (see above); load keeps
 * a descriptor of it open until the snapshot is freed. A file that anyone
 * may write (world-writable, S_IWOTH, and reachable by a path: a memfd is
 * not) is refused with SL_EINVAL. */
int sl_snapshot_load(sl_snapshot **out, const char *path, char *err, size_t errlen);
/* Full check: everything load checks, plus the identity recomputed from the
 * blob and region records (SL_EHASH on a mismatch). 0 when intact;
 * SL_ECHANGED when the file changed while it was read. The hash runs on up
 * to one thread per CPU the caller may use (at most 32, and one per MiB of
 * blob), created and joined inside the call; they take no signal but those
 * their own faults raise. */
int sl_snapshot_verify_file(const char *path, char *err, size_t errlen);
/* Describes the file one text line at a time (no newline), as printed by
 * `sandlet snapshot inspect`: header fields, the identity, the sections with
 * their offsets and sizes, page counts and a map of every address space. */
int sl_snapshot_inspect(const char *path, void (*line)(void *user, const char *text), void *user, char *err,
                        size_t errlen);
/* The same description as one JSON object (UTF-8, no newline), as printed by
 * `sandlet snapshot inspect --json`; its schema is in docs/cli.md ("JSON
 * output"): fields are only ever added. Addresses are "0x..." hex strings,
 * sizes and counts are numbers. On success *json is a NUL-terminated string
 * the caller frees with free(); on failure *json is NULL. Thread-safe. */
int sl_snapshot_inspect_json(const char *path, char **json, char *err, size_t errlen);

/* Progress of a long file operation: `done` of `total` bytes, 0 <= done <=
 * total. Called synchronously on the calling thread: first with done = 0,
 * then at most once per 16 MiB, and last with done == total. It must not
 * free the snapshot being saved; it may take its time (the operation waits). */
typedef void (*sl_progress_fn)(void *user, uint64_t done, uint64_t total);
/* sl_snapshot_save, calling progress (if not NULL) as the file is written:
 * total is the file's size; done reaches it once every byte is written, before
 * the fsync and the rename. Same results and errors as sl_snapshot_save. */
int sl_snapshot_save_progress(const sl_snapshot *snap, const char *path, sl_progress_fn progress, void *user,
                              char *err, size_t errlen);
/* sl_snapshot_verify_file, calling progress (if not NULL) as the identity is
 * recomputed: total is the number of bytes hashed (blob and region records);
 * no call when the file fails before hashing. Same results as
 * sl_snapshot_verify_file. Both functions are thread-safe: different threads
 * may save and verify at the same time, each with its own callback. */
int sl_snapshot_verify_file_progress(const char *path, sl_progress_fn progress, void *user, char *err,
                                     size_t errlen);
/* ---- child files (docs/snapshot-format.md §9) ----
 * A child file holds only what its parent file lacks: runs of pages taken
 * from the files of its chain (its parent, the parent's parent, ...) and the
 * pages found in none of them, matched by content (a BLAKE3 hash per page,
 * stored in every file so that a later child need not rehash its parent).
 * Its identity is the identity the same snapshot has saved in full.
 * Loading one maps each run from the file that holds it (MAP_PRIVATE,
 * read-only): time grows with the number of runs, never with the size, and
 * no page is read. Every file of the chain must stay unchanged while the
 * snapshot is alive, as for a full file (see above); sandboxes and processes
 * that load children of one parent share the parent's pages (page cache).
 * Chains are at most SL_CHAIN_MAX children deep.
 *
 * Where load looks for a child's parent, in this order, taking the first
 * file whose identity is the one the child names: (1) each entry of
 * `parents` (a ':'-separated list of files and directories; NULL or "" for
 * none); (2) the child's own directory; (3) each entry of the environment
 * variable SANDLET_SNAPSHOT_PATH (same syntax). In a directory it tries the
 * parent's file name as the child recorded it at save, then "<identity in
 * hex>.snap". The grandparent is looked for the same way, next to the
 * parent. */
#define SL_CHAIN_MAX 16 /* child files in one chain, the loaded one included */

/* Writes snap to path as a child of the snapshot file parent_path (any
 * snapshot file, full or child, whose chain loads as sl_snapshot_load_chain
 * would load it with parents = NULL): pages the sandbox did not change since
 * it ran on that parent are runs into it without being read or hashed; every
 * other page is hashed and, when a file of the chain holds the same bytes
 * (compared, not only hashed), taken from there, else stored in the child.
 * Written atomically and durably as sl_snapshot_save. progress may be NULL.
 * Errors: as sl_snapshot_save; SL_EPARENT when the parent's chain cannot be
 * loaded, SL_ERANGE when the child would be more than SL_CHAIN_MAX deep
 * (save it in full or from a flattened parent). */
int sl_snapshot_save_child(const sl_snapshot *snap, const char *parent_path, const char *path,
                           sl_progress_fn progress, void *user, char *err, size_t errlen);
/* sl_snapshot_load for any file, full or child, looking for a child's
 * parents in `parents` first (see above). A file in those places with
 * another identity, or that snapshot saved another way (flattened or
 * re-saved: its pages lie elsewhere), is passed over; when no place holds
 * the right file the load is SL_EPARENT, with a message naming the identity
 * it needs and where it looked. A place that cannot be read (no permission,
 * no descriptors left) is that error when nothing else is found. A chain
 * that loops or is more than SL_CHAIN_MAX deep, and a run outside the file
 * it names, are SL_EFORMAT. Each run is one kernel mapping (a process has
 * vm.max_map_count of them, 65530 by default: SL_ENOMEM past that) and each
 * file of the chain one descriptor, for as long as the snapshot lives: load
 * a child once and share the handle between sandboxes and threads.
 * sl_snapshot_load(out, path, ...) is sl_snapshot_load_chain(out, path,
 * NULL, ...). */
int sl_snapshot_load_chain(sl_snapshot **out, const char *path, const char *parents, char *err, size_t errlen);
/* sl_snapshot_verify_file for any file: a child is checked with every file
 * of its chain (each one's identity recomputed from its pages, from the
 * full file down; SL_EHASH names the first that fails), found as
 * sl_snapshot_load_chain finds them. */
int sl_snapshot_verify_chain(const char *path, const char *parents, sl_progress_fn progress, void *user,
                             char *err, size_t errlen);
/* The path a snapshot was loaded from (as given to load), or NULL for a
 * snapshot made in memory. Valid while snap is. */
const char *sl_snapshot_file(const sl_snapshot *snap);
/* How many child files the snapshot's chain has (0: a full file or a
 * snapshot in memory; 1: a child of a full file; ...). */
unsigned sl_snapshot_chain_depth(const sl_snapshot *snap);
/* The path of the file `level` steps up the chain of a loaded snapshot (0:
 * the file itself, as sl_snapshot_file; 1: its parent, as found by load;
 * ... up to sl_snapshot_chain_depth), or NULL past the chain's end or for a
 * snapshot made in memory. Valid while snap is. */
const char *sl_snapshot_chain_file(const sl_snapshot *snap, unsigned level);
/* ------------------------------------------------- end of snapshot files */

/* ------------------------------------------------------- snapshot diff */

/* What differs between two snapshots, by guest virtual range: the kinds of
 * sl_diff_range. Identical pages are not reported. */
#define SL_DIFF_ADDED 1   /* mapped in B only */
#define SL_DIFF_REMOVED 2 /* mapped in A only */
#define SL_DIFF_CHANGED 3 /* mapped in both, with different contents */
#define SL_DIFF_PERM 4    /* mapped in both, same contents, different permissions */

/* A run of adjacent guest virtual pages of one address space, all of one
 * kind and with the same permissions in A and in B. */
typedef struct sl_diff_range {
    unsigned space;  /* address space: root `space` of A is compared with root `space` of B */
    int kind;        /* SL_DIFF_* */
    uint64_t start;  /* first guest virtual address: page-aligned (canonical on amd64) */
    uint64_t size;   /* bytes, a non-zero multiple of 4096; start + size wraps to 0 for a
                      * range that ends at the top of the amd64 address space */
    unsigned perm_a; /* SL_PERM_* bits (READ, WRITE, EXEC, USER, COW) in A; 0 when ADDED */
    unsigned perm_b; /* the same in B; 0 when REMOVED */
} sl_diff_range;

/* Called once per range; return 0 to go on, anything else to stop the diff,
 * which then returns that value (make it positive to tell it from SL_E*).
 * r is valid during the call only. */
typedef int (*sl_diff_fn)(void *user, const sl_diff_range *r);

/* Compares snapshot a with snapshot b, of any lineage, configuration or
 * architecture, made in memory or loaded from files, and calls fn for each
 * range that differs, in order of address space, then of start, never
 * overlapping; two adjacent ranges differ in kind or permissions.
 *
 * Pages are compared by content: the 4096 bytes a sandbox restored from the
 * snapshot reads at that virtual address (memory its page tables map outside
 * the blob reads as zeros when it is scratch and as nothing where there is
 * no memory), wherever the page lies in the blob, so two snapshots that map
 * the same contents at the same addresses have no differences. Address
 * spaces are matched by index; every page of a space only one of them has is
 * added or removed. The scratch window of each snapshot (mapped afresh by
 * every restore, not part of the snapshot) is not compared: a page one maps
 * where the other's scratch window lies is reported as added or removed.
 *
 * Time grows with the pages both map (each is read once), memory with the
 * runs one address space maps. Each address space is walked on its own, so
 * tables that spaces share are walked once per space: on hostile files the
 * cost can reach the number of table entries (one per 8 bytes of the table
 * area) times the number of spaces, in time, and 32 bytes per run of
 * unlike entries, in memory. The page tables are hostile input and the
 * walk is bounded: an address space is refused when walking it visits more
 * tables than the blob has pages (only tables reached twice in one space can
 * do that), or when it maps more pages of the blob than its table area holds
 * entries plus the blob's pages (large pages mapping the blob many times).
 *
 * Returns 0 after the last range; fn's non-zero value when it stopped the
 * diff; SL_EINVAL when a, b or fn is NULL; SL_EPAGETABLE or SL_ERANGE for
 * page tables past those bounds; SL_ENOMEM; SL_ECHANGED when a file that a
 * or b was loaded from has changed (before the diff, or while it read the
 * pages: ranges already reported may then be wrong). Messages go to
 * err[0..errlen) when err is not NULL. Reads the snapshots only: any number
 * of threads may diff, restore or run sandboxes on the same snapshots at
 * once; the caller keeps both alive until it returns. */
int sl_snapshot_diff(const sl_snapshot *a, const sl_snapshot *b, sl_diff_fn fn, void *user, char *err,
                     size_t errlen);


#ifdef __cplusplus
}
#endif

#endif

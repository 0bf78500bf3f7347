/* The parent files of a child snapshot file, for the KVM lab (lab.c): the
 * lab copies in only the files it is given, so the inner sandlet finds a
 * child's parents only when the outer one names them too. This looks for
 * them where sl_snapshot_load_chain would (sandlet.h, "child files"): next
 * to the child, then in $SANDLET_SNAPSHOT_PATH, by the name the child
 * recorded and then by "<identity>.snap", each level next to the previous
 * one. It reads a few header fields (docs/snapshot-format.md §2, §9) and
 * validates nothing: the library inside the lab does, and a file missed or
 * picked wrongly here only makes the inner load report the parent it
 * lacks, naming its identity. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

typedef struct chain_hdr {
    uint8_t identity[32], parent[32];
    int child;
    char name[256]; /* the parent's file-name hint, or "" */
} chain_hdr;

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the fields of a regular file that starts as a snapshot file does;
 * -1 for anything else. */
static int read_hdr(const char *path, chain_hdr *h)
{
    uint8_t b[0x400];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        n = pread(fd, b, sizeof b, 0);
    if (n != (ssize_t)sizeof b || memcmp(b, "SLSNAPF", 8) != 0) {
        close(fd);
        return -1;
    }
    memcpy(h->identity, b + 0x160, 32);
    memcpy(h->parent, b + 0x1A0, 32);
    h->child = (le32(b + 0x1C0) & 3) == 3; /* has parent, child file */
    uint32_t size = le32(b + 0x11C), off = le32(b + 0x144);
    h->name[0] = 0;
    if (h->child && size && size < sizeof h->name && pread(fd, h->name, size, off) == (ssize_t)size) {
        h->name[size] = 0;
        if (strlen(h->name) != size || strchr(h->name, '/') || strcmp(h->name, ".") == 0 ||
            strcmp(h->name, "..") == 0)
            h->name[0] = 0;
    }
    close(fd);
    return 0;
}

/* path (malloc'd) when it is a snapshot file with identity id, else NULL. */
static char *try_file(char *path, const uint8_t id[32])
{
    chain_hdr h;
    if (path && read_hdr(path, &h) == 0 && memcmp(h.identity, id, 32) == 0)
        return path;
    free(path);
    return NULL;
}

static char *join(const char *dir, size_t dlen, const char *name)
{
    char *p = malloc(dlen + strlen(name) + 2);
    if (p)
        sprintf(p, "%.*s/%s", (int)dlen, dir, name);
    return p;
}

/* The parent of h in the directory dir[0..dlen). */
static char *try_dir(const char *dir, size_t dlen, const chain_hdr *h)
{
    char hex[70], *p = NULL;
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", h->parent[i]);
    strcpy(hex + 64, ".snap");
    if (h->name[0] && (p = try_file(join(dir, dlen, h->name), h->parent)))
        return p;
    return try_file(join(dir, dlen, hex), h->parent);
}

/* The parent of the child at path, whose header is h; NULL when not found. */
static char *find_parent(const char *path, const chain_hdr *h)
{
    const char *slash = strrchr(path, '/');
    char *p = slash ? try_dir(path, slash == path ? 1 : (size_t)(slash - path), h) : try_dir(".", 1, h);
    const char *list = getenv("SANDLET_SNAPSHOT_PATH");
    for (const char *e = list; !p && e && *e;) {
        const char *end = strchr(e, ':');
        size_t n = end ? (size_t)(end - e) : strlen(e);
        char *entry = n ? strndup(e, n) : NULL;
        struct stat st;
        if (entry && stat(entry, &st) == 0)
            p = S_ISDIR(st.st_mode) ? try_dir(entry, n, h) : try_file(strdup(entry), h->parent);
        free(entry);
        e = end ? end + 1 : NULL;
    }
    return p;
}

size_t lab_chain_files(const char *path, char **out, size_t max)
{
    /* A loop is told by the files, not by identities: a child that changed
     * nothing has its parent's identity. */
    struct stat seen[SL_CHAIN_MAX + 1];
    size_t n = 0;
    chain_hdr h;
    const char *cur = path;
    if (stat(path, &seen[0]) != 0)
        return 0;
    while (n < max && n < SL_CHAIN_MAX && read_hdr(cur, &h) == 0 && h.child) {
        char *p = find_parent(cur, &h);
        if (!p || stat(p, &seen[n + 1]) != 0) {
            free(p);
            break;
        }
        for (size_t i = 0; i <= n; i++)
            if (seen[i].st_dev == seen[n + 1].st_dev && seen[i].st_ino == seen[n + 1].st_ino) {
                free(p); /* the inner load refuses the loop */
                return n;
            }
        out[n++] = p;
        cur = p;
    }
    return n;
}

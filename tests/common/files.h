/* Temporary files for unit tests that save and edit snapshot files:
 * tpath() names a file in the test's directory g_dir (the test fills it,
 * e.g. with mkdtemp), read_file/write_file move whole files, rd64/wr64/wr32
 * edit little-endian fields in place (these tests run on x86 hosts). */
#ifndef SL_TEST_FILES_H
#define SL_TEST_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_dir[256];

static inline const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static inline uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static inline int write_file(const char *path, const uint8_t *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static inline uint64_t rd64(const uint8_t *p, unsigned off)
{
    uint64_t v;
    memcpy(&v, p + off, 8);
    return v;
}

static inline void wr64(uint8_t *p, unsigned off, uint64_t v) { memcpy(p + off, &v, 8); }
static inline void wr32(uint8_t *p, unsigned off, uint32_t v) { memcpy(p + off, &v, 4); }

/* Lines a callback receives (sl_snapshot_inspect's), kept one per line in
 * buf (NUL-terminated) and counted in n. */
typedef struct lines {
    char *buf;
    size_t len, n;
} lines;

static inline void collect(void *user, const char *text)
{
    lines *l = user;
    size_t t = strlen(text);
    char *nb = realloc(l->buf, l->len + t + 2);
    if (!nb)
        return;
    l->buf = nb;
    memcpy(l->buf + l->len, text, t);
    l->buf[l->len + t] = '\n';
    l->len += t + 1;
    l->buf[l->len] = 0;
    l->n++;
}

#endif

/* The small libc of the guest runtime. Built with -fno-builtin and
 * -fno-tree-loop-distribute-patterns so that the compiler does not turn
 * these loops back into calls to themselves. */
#include "rt.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n)::"memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    while (n--) /* overlapping, destination above: copy backwards */
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i] || !a[i])
            return (unsigned char)a[i] - (unsigned char)b[i];
    }
    return 0;
}

char *strcpy(char *dst, const char *src)
{
    size_t i = 0;
    while ((dst[i] = src[i]))
        i++;
    return dst;
}

/* ---- vsnprintf ---- */

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(out *o, char c, int n)
{
    while (n-- > 0)
        put(o, c);
}

static void emit(out *o, const char *s, size_t n, int width, bool left, char padc)
{
    int fill = width > (int)n ? width - (int)n : 0;
    if (!left)
        pad(o, padc, fill);
    for (size_t i = 0; i < n; i++)
        put(o, s[i]);
    if (left)
        pad(o, ' ', fill);
}

static void emit_num(out *o, unsigned long long v, bool neg, unsigned base, bool upper, int width, bool left,
                     bool zero, const char *prefix)
{
    char tmp[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    size_t plen = strlen(prefix) + (neg ? 1 : 0);
    int fill = width > n + (int)plen ? width - n - (int)plen : 0;
    if (!left && !zero)
        pad(o, ' ', fill);
    if (neg)
        put(o, '-');
    for (const char *p = prefix; *p; p++)
        put(o, *p);
    if (!left && zero)
        pad(o, '0', fill);
    while (n)
        put(o, tmp[--n]);
    if (left)
        pad(o, ' ', fill);
}

int vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    out o = {buf, cap, 0};
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            put(&o, *p);
            continue;
        }
        p++;
        bool left = false, zero = false;
        for (;; p++) {
            if (*p == '-')
                left = true;
            else if (*p == '0')
                zero = true;
            else
                break;
        }
        int width = 0, prec = -1;
        if (*p == '*') {
            width = va_arg(ap, int);
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                width = width * 10 + (*p++ - '0');
        }
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') {
                prec = va_arg(ap, int);
                p++;
            } else {
                while (*p >= '0' && *p <= '9')
                    prec = prec * 10 + (*p++ - '0');
            }
        }
        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
        while (*p == 'l' || *p == 'z' || *p == 'h') {
            if (*p == 'l')
                lng++;
            else if (*p == 'z')
                lng = 3;
            p++;
        }
        char c = *p;
        if (!c)
            break;
        unsigned long long u;
        long long s;
        switch (c) {
        case 'd':
        case 'i':
            s = lng == 0 ? va_arg(ap, int) : lng == 1 ? va_arg(ap, long) : lng == 3 ? (long long)va_arg(ap, size_t)
                                                                                   : va_arg(ap, long long);
            u = s < 0 ? 0ull - (unsigned long long)s : (unsigned long long)s;
            emit_num(&o, u, s < 0, 10, false, width, left, zero, "");
            break;
        case 'u':
        case 'x':
        case 'X':
            u = lng == 0   ? va_arg(ap, unsigned)
                : lng == 1 ? va_arg(ap, unsigned long)
                : lng == 3 ? va_arg(ap, size_t)
                           : va_arg(ap, unsigned long long);
            emit_num(&o, u, false, c == 'u' ? 10 : 16, c == 'X', width, left, zero, "");
            break;
        case 'p':
            u = (uintptr_t)va_arg(ap, void *);
            emit_num(&o, u, false, 16, false, width, left, zero, "0x");
            break;
        case 'c': {
            char ch = (char)va_arg(ap, int);
            emit(&o, &ch, 1, width, left, ' ');
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            size_t n = 0;
            while (str[n] && (prec < 0 || n < (size_t)prec))
                n++;
            emit(&o, str, n, width, left, ' ');
            break;
        }
        case '%': put(&o, '%'); break;
        default:
            put(&o, '%');
            put(&o, c);
            break;
        }
    }
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = 0;
    return o.len > 0x7fffffff ? 0x7fffffff : (int)o.len;
}

int snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

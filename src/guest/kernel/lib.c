/* The few C-library functions the kernel needs, and the ones the compiler
 * may call on its own (structure copies and zeroing): the kernel links no C
 * library. */
#include "kernel.h"

/* String instructions, a word at a time and the tail by bytes: fast on
 * hardware, and on PVM, which emulates each kernel instruction, one emulation
 * per run of up to 1,024 iterations instead of three per byte (a `rep`
 * iteration still costs ~1 us there, so words, not bytes). */
#if defined(__x86_64__)
#define K_WORD 8u
#define K_REP_STOSW "rep stosq"
#define K_REP_MOVSW "rep movsq"
#else
#define K_WORD 4u
#define K_REP_STOSW "rep stosl"
#define K_REP_MOVSW "rep movsl"
#endif

void *k_memset(void *d, int c, size_t n)
{
    void *p = d;
    size_t words = n / K_WORD, tail = n % K_WORD;
    uintptr_t v = (unsigned char)c;
    v *= (uintptr_t)-1 / 0xFF; /* the byte in every byte of a word */
    __asm__ volatile(K_REP_STOSW : "+D"(p), "+c"(words) : "a"(v) : "memory");
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(tail) : "a"(v) : "memory");
    return d;
}

void *k_memcpy(void *d, const void *s, size_t n)
{
    void *p = d;
    const void *q = s;
    size_t words = n / K_WORD, tail = n % K_WORD;
    __asm__ volatile(K_REP_MOVSW : "+D"(p), "+S"(q), "+c"(words)::"memory");
    __asm__ volatile("rep movsb" : "+D"(p), "+S"(q), "+c"(tail)::"memory");
    return d;
}

size_t k_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

void *memset(void *d, int c, size_t n) { return k_memset(d, c, n); }
void *memcpy(void *d, const void *s, size_t n) { return k_memcpy(d, s, n); }

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    if (p < q) {
        while (n--)
            *p++ = *q++;
    } else {
        while (n--)
            p[n] = q[n];
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}

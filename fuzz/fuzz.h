/* Shared by the libFuzzer targets in fuzz/. */
#ifndef SL_FUZZ_H
#define SL_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant the target checks: a violation aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#define FUZZ_ASSERT(c)                                                                \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

#endif

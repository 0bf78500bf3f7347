/* A finite double as JSON text, for the guests that speak JSON
 * (guests/sqlite.c, guests/lua_plugin/json.c): the shortest of %.15g, %.16g
 * and %.17g that reads back as the same double (%.17g always does), with
 * ".0" added when it would read as an integer, so that a float stays a float.
 * Writes at most cap bytes with the NUL (40 are always enough) and returns
 * the length. NaN and infinities are the caller's: JSON has no spelling. */
#ifndef SL_GUESTS_JSON_DOUBLE_H
#define SL_GUESTS_JSON_DOUBLE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline size_t json_double(char *out, size_t cap, double x)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, x);
        /* A locale with a decimal comma (possible natively, never in a guest). */
        for (char *c = out; *c; c++)
            if (*c == ',')
                *c = '.';
        if (strtod(out, NULL) == x)
            break;
    }
    if (n > 0 && out[strspn(out, "-0123456789")] == '\0')
        n += snprintf(out + n, cap - (size_t)n, ".0");
    return n > 0 ? (size_t)n : 0;
}

#endif

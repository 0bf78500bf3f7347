/* The library's version, compiled in: a program built against one header and
 * run against another shared library can tell which one it got. */
#include "sandlet.h"

#define SL_STR_(x) #x
#define SL_STR(x) SL_STR_(x)

_Static_assert(SANDLET_VERSION_MINOR < 100 && SANDLET_VERSION_PATCH < 100,
               "SANDLET_VERSION_NUMBER gives MINOR and PATCH two decimal digits each");

const char *sl_version(void)
{
    return SL_STR(SANDLET_VERSION_MAJOR) "." SL_STR(SANDLET_VERSION_MINOR) "." SL_STR(SANDLET_VERSION_PATCH);
}

unsigned sl_version_number(void)
{
    return SANDLET_VERSION_NUMBER;
}

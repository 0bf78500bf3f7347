/* The parent files of a child snapshot file, for the KVM lab (lab.c): the
 * lab copies in only the files it is given, so the inner sandlet finds a
 * child's parents only when the outer one names them too. The library
 * finds them, as any load would (sandlet.h, "child files"): next to each
 * child, then in $SANDLET_SNAPSHOT_PATH. A file it cannot load gives none;
 * the load inside the lab then says what is wrong. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

size_t lab_chain_files(const char *path, char **out, size_t max)
{
    sl_snapshot *s;
    if (sl_snapshot_load(&s, path, NULL, 0) != 0)
        return 0;
    size_t n = 0;
    for (const char *p; n < max && (p = sl_snapshot_chain_file(s, (unsigned)n + 1)) && (out[n] = strdup(p));)
        n++;
    sl_snapshot_free(s);
    return n;
}

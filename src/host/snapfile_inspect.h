/* The report behind `sandlet snapshot inspect` (snapfile_inspect.c) and its
 * address map (snapfile_map.c), in two renderings: text lines handed to a
 * callback one at a time, or one JSON object built in a growing buffer. */
#ifndef SL_SNAPFILE_INSPECT_H
#define SL_SNAPFILE_INSPECT_H

#include <stdbool.h>
#include <stddef.h>

#include "snapshot.h"

typedef void (*sl_line_fn)(void *user, const char *text);

/* One formatted line (at most 511 bytes) to line(user, ...). */
void sl_inspect_emit(sl_line_fn line, void *user, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The JSON form of the report is built in one growing buffer. Every string
 * in it is one of ours (names, hex digits): nothing read from the file is
 * copied as text, so nothing needs escaping. */
typedef struct sl_jout {
    char *p;
    size_t len, cap;
    bool oom; /* an allocation failed: the output is cut short */
} sl_jout;

/* Appends formatted text to j (sets j->oom when it cannot). */
void sl_jput(sl_jout *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string of the NUL-terminated bytes at str, quoted: '"', '\\' and
 * every byte below 0x20 or above 0x7E escaped (\u00XX), so that whatever a
 * hostile file holds comes out as valid JSON, byte for byte recoverable. */
void sl_jput_string(sl_jout *j, const char *str);

/* The address map of s: every address space's mapped ranges, as text lines
 * (json NULL) or as the "spaces" and "walk_error" members of the JSON
 * object open in json. */
void sl_inspect_map(const sl_snapshot *s, sl_line_fn line, void *user, sl_jout *json);

#endif

/* The version note every guest carries (name "sandlet", type
 * SL_NOTE_TYPE_VERSION, desc = u32 major, u32 minor). The ".note" prefix makes
 * the assembler emit SHT_NOTE, and the "a" flag puts it in a PT_NOTE. Built
 * into the guest kernel and the guest library alike. */
#include <stdint.h>

#include "abi.h"

struct sl_version_note {
    uint32_t namesz, descsz, type;
    char name[8];
    uint32_t desc[2];
};

extern const struct sl_version_note sl_version_note;
__attribute__((section(".note.sandlet"), aligned(4), used)) const struct sl_version_note sl_version_note = {8, 8, SL_NOTE_TYPE_VERSION, SL_NOTE_NAME, {SL_ABI_VERSION_MAJOR, SL_ABI_VERSION_MINOR}};

/* The demo guest, built for x86-64 (demo) and i686 (demo32) from this file.
 *   Echo(string) -> string          Add(i32, i32) -> i32
 *   Counter() -> i64                Fill(u64 bytes) -> u64 checksum
 *   Upper(string) -> string         (calls host function HostUpper(string) -> string)
 *   Print(string) -> void           Generation() -> u64 */
#include <sandlet_guest.h>
#include <stdio.h>
#include <stdlib.h>

static int64_t counter;

static int echo(const sl_gvalue *a, sl_gvalue *ret)
{
    sl_ret_str(ret, a[0].v.s.ptr, a[0].v.s.len);
    return SL_ABI_OK;
}

static int add(const sl_gvalue *a, sl_gvalue *ret)
{
    ret->v.i32 = (int32_t)((uint32_t)a[0].v.i32 + (uint32_t)a[1].v.i32);
    return SL_ABI_OK;
}

static int count(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.i64 = ++counter;
    return SL_ABI_OK;
}

/* Dirties `bytes` bytes of a fresh heap block with byte i = (i * 131 + 17) mod 256
 * and returns the sum of those bytes, so the caller can check the result. */
static int fill(const sl_gvalue *a, sl_gvalue *ret)
{
    uint64_t n = a[0].v.u64;
    if (n > (size_t)-1)
        return sl_fail(ret, SL_ABI_ENOMEM, "Fill: size too large");
    uint8_t *p = malloc((size_t)n);
    if (!p && n)
        return sl_fail(ret, SL_ABI_ENOMEM, "Fill: heap exhausted");
    uint64_t sum = 0;
    for (size_t i = 0; i < (size_t)n; i++) {
        uint8_t v = (uint8_t)(i * 131u + 17u);
        p[i] = v;
        sum += v;
    }
    /* Read back: the copy-on-write must have kept every byte. */
    uint64_t check = 0;
    for (size_t i = 0; i < (size_t)n; i++)
        check += ((volatile uint8_t *)p)[i];
    free(p);
    if (check != sum)
        return sl_fail(ret, SL_ABI_EABORT, "Fill: read-back mismatch");
    ret->v.u64 = sum;
    return SL_ABI_OK;
}

static int upper(const sl_gvalue *a, sl_gvalue *ret)
{
    int rc = sl_call_host("HostUpper", SL_T_STRING, 1, &a[0], ret);
    if (rc != SL_ABI_OK) {
        static char why[320]; /* read by the runtime after upper returns */
        snprintf(why, sizeof why, "Upper: HostUpper failed: %s", sl_host_error());
        return sl_fail(ret, rc, why);
    }
    return SL_ABI_OK; /* ret->owned is set: the runtime frees the copy */
}

static int print(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)ret;
    sl_print(a[0].v.s.ptr);
    return SL_ABI_OK;
}

static int generation(const sl_gvalue *a, sl_gvalue *ret)
{
    (void)a;
    ret->v.u64 = sl_generation();
    return SL_ABI_OK;
}

void sandlet_main(void)
{
    static const uint8_t s1[] = {SL_T_STRING}, ii[] = {SL_T_I32, SL_T_I32}, u1[] = {SL_T_U64};
    if (sl_register("Echo", SL_T_STRING, 1, s1, echo) || sl_register("Add", SL_T_I32, 2, ii, add) ||
        sl_register("Counter", SL_T_I64, 0, NULL, count) || sl_register("Fill", SL_T_U64, 1, u1, fill) ||
        sl_register("Upper", SL_T_STRING, 1, s1, upper) || sl_register("Print", SL_T_VOID, 1, s1, print) ||
        sl_register("Generation", SL_T_U64, 0, NULL, generation))
        sl_abort(1, "demo: registration failed");
}

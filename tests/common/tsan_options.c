/* Linked into every test program of the ThreadSanitizer build (Makefile,
 * TSAN=1), so that the options hold wherever the program runs, the KVM lab
 * included, without TSAN_OPTIONS: the first report ends the program with exit
 * code 66, which tests/run counts as a failure; a lock-order inversion
 * ("potential deadlock") is a report too, with both stacks. TSAN_OPTIONS
 * still overrides them.
 *
 * Every report in sandlet's code is a bug to fix. A
 * suppression may only name third-party code, with the reason next to it, in
 * the string __tsan_default_suppressions returns (add that function here). */
const char *__tsan_default_options(void);

const char *__tsan_default_options(void)
{
    return "halt_on_error=1:exitcode=66:second_deadlock_stack=1";
}

const char *__tsan_default_suppressions(void);

/* BLAKE3's dispatcher (third party: Debian's BLAKE3 sources, blake3_dispatch.c)
 * caches the CPU's features in a plain global on first use; two threads that
 * hash for the first time at once (two verifies, two loads of children) both
 * write the same value to it. */
const char *__tsan_default_suppressions(void)
{
    return "race:get_cpu_features\n";
}

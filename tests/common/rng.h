/* The tests' pseudo-random numbers: xorshift64, seeded by each test file
 * (a fixed seed, so that a failure repeats). Not for anything but tests. */
#ifndef SL_TEST_RNG_H
#define SL_TEST_RNG_H

#include <stdint.h>

/* The generator's state; a test file defines it with its seed. */
extern uint64_t rng_state;

/* A number below `below` (0 when below is 0); advances rng_state. */
static inline uint64_t rnd(uint64_t below)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return below ? rng_state % below : 0;
}

#endif

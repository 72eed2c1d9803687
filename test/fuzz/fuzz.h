/*
 * Shared helpers for the libFuzzer targets in this folder.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput over one pure
 * module. A broken invariant aborts through FUZZ_CHECK, which libFuzzer
 * reports as a crash and saves as an input to reproduce; plain assert()
 * is not used so that the checks hold whatever NDEBUG says.
 */
#ifndef LOCKERD_FUZZ_H
#define LOCKERD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* Does [p, p+n) lie inside [base, base+len)? An empty span may sit at the end. */
static inline int fuzz_inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

/* xorshift32: chunk sizes and other choices derived from the input, so a
 * saved crash input replays the same way. */
static inline uint32_t fuzz_rand(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

#endif

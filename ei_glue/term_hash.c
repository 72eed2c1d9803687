/*
 * term_hash / term_hash_seed: the byte hash behind every hash table in
 * lockerd (keys, tags, waiters).
 *
 * Model. 64-bit multiply-fold mixing over 8-byte reads (wyhash-like in
 * shape, written here): each 16-byte block is folded with the running state
 * through a 64x64->128 multiply, the tail is read with overlapping loads,
 * and a final fold mixes in the length. Seeded: tables a peer can fill use
 * a random per-process seed so colliding keys cannot be computed offline.
 */
#include "term.h"

#include <string.h>

#define HK0 0x9E3779B97F4A7C15ull
#define HK1 0xBF58476D1CE4E5B9ull
#define HK2 0x94D049BB133111EBull
#define HK3 0xD6E8FEB86659FD93ull

static inline void mul128(uint64_t a, uint64_t b, uint64_t *lo, uint64_t *hi)
{
#ifdef __SIZEOF_INT128__
    __extension__ typedef unsigned __int128 u128;
    u128 r = (u128)a * b;
    *lo = (uint64_t)r;
    *hi = (uint64_t)(r >> 64);
#else
    uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    *lo = mid << 32 | (uint32_t)ll;
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    uint64_t lo, hi;
    mul128(a, b, &lo, &hi);
    return lo ^ hi;
}

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint64_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static inline uint64_t hash_long(const uint8_t *p, size_t n, uint64_t s, uint64_t seed)
{
    uint64_t k1 = HK1 ^ seed, k2 = HK2 ^ seed, k3 = HK3 ^ seed;
    if (n > 48) {
        uint64_t s1 = s, s2 = s;
        do {
            s = fold_mul(rd64(p) ^ k1, rd64(p + 8) ^ s);
            s1 = fold_mul(rd64(p + 16) ^ k2, rd64(p + 24) ^ s1);
            s2 = fold_mul(rd64(p + 32) ^ k3, rd64(p + 40) ^ s2);
            p += 48;
            n -= 48;
        } while (n > 48);
        s ^= s1 ^ s2;
    }
    for (; n > 16; p += 16, n -= 16)
        s = fold_mul(rd64(p) ^ k1, rd64(p + 8) ^ s);
    return s;
}

static inline uint64_t hash_core(const uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed ^ fold_mul(seed ^ HK0, HK1), a, b, lo, hi;
    if (n <= 16) {
        if (n >= 4) {
            size_t m = (n >> 3) << 2;
            a = rd32(p) << 32 | rd32(p + m);
            b = rd32(p + n - 4) << 32 | rd32(p + n - 4 - m);
        } else if (n) {
            a = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        /* The loops leave 1..16 bytes; the last 16 bytes cover them. */
        s = hash_long(p, n, s, seed);
        a = rd64(p + n - 16);
        b = rd64(p + n - 8);
    }
    mul128(a ^ HK1 ^ seed, b ^ s, &lo, &hi);
    return fold_mul(lo ^ HK0 ^ n, hi ^ HK1);
}

uint64_t term_hash_seed(const void *p, size_t n, uint64_t seed)
{
    return hash_core(p, n, seed);
}

uint64_t term_hash(const void *p, size_t n)
{
    return hash_core(p, n, 0);
}

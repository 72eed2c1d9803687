/*
 * Growable byte buffer with big-endian put helpers.
 *
 * A buf owns its storage; buf_free() releases it and leaves an empty buf.
 * Every append either succeeds whole or fails with -ENOMEM leaving the
 * contents unchanged, so callers never see half-written fields.
 * `off` marks consumed bytes at the front: readers advance it with
 * buf_consume() and the storage is compacted lazily.
 */
#ifndef LOCKERD_BUF_H
#define LOCKERD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t off;  /* first unconsumed byte */
    size_t len;  /* end of valid bytes (data[off..len) is the content) */
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);                 /* empty, keep storage */
static inline size_t buf_size(const struct buf *b) { return b->len - b->off; }
/* NULL for a never-allocated buf (NULL + 0 is undefined in C). */
static inline uint8_t *buf_head(const struct buf *b) { return b->data ? b->data + b->off : NULL; }
int buf_reserve(struct buf *b, size_t extra);  /* room for extra more bytes */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
void buf_consume(struct buf *b, size_t n);     /* drop n bytes from the front */

static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) << 32 | get_u32(p + 4); }
static inline void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

#endif

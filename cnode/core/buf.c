/* Growable byte buffer; see buf.h for the model. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b) { b->data = NULL; b->off = b->len = b->cap = 0; }

void buf_free(struct buf *b)
{
    if (!b)
        return;
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b) { b->off = b->len = 0; }

int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    /* Reclaim consumed space before growing when it is worth it. */
    if (b->off && b->off >= b->cap / 2) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= extra)
            return 0;
    }
    size_t need = b->len + extra;
    if (need < b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_put_u8(struct buf *b, uint8_t v) { return buf_append(b, &v, 1); }

int buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return buf_append(b, t, 2);
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t t[4];
    put_u32(t, v);
    return buf_append(b, t, 4);
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    int rc = buf_put_u32(b, (uint32_t)(v >> 32));
    return rc ? rc : buf_put_u32(b, (uint32_t)v);
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len - b->off) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
}

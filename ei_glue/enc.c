/*
 * Term encoders; see enc.h. ei writes scalars into a caller-sized char
 * array, so each ei call first reserves the worst case in the buf and then
 * advances buf->len by what ei reports it wrote. The shapes every reply
 * uses (short ASCII atoms, small integers) are written directly: they are
 * the same bytes ei writes, without its per-call overhead on the hot path.
 */
#include "enc.h"

#include <ei.h>
#include <errno.h>
#include <string.h>

/* Worst case for one atom of 255 characters of up to 4 UTF-8 bytes. */
#define ATOM_MAX_ENC (3 + 255 * 4)

/* SMALL_ATOM_UTF8_EXT of an ASCII name of at most 255 bytes: 0 or -ENOMEM;
 * 1 (nothing written) for any other name. */
static int atom_ascii(struct buf *b, const char *name, size_t n)
{
    if (n > 255)
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] >= 0x80)
            return 1;
    int rc = buf_reserve(b, 2 + n);
    if (rc)
        return rc;
    b->data[b->len] = TT_SMALL_ATOM_UTF8;
    b->data[b->len + 1] = (uint8_t)n;
    memcpy(b->data + b->len + 2, name, n);
    b->len += 2 + n;
    return 0;
}

int enc_atom(struct buf *b, const char *name)
{
    size_t n = strlen(name);
    int rc = atom_ascii(b, name, n);
    if (rc <= 0)
        return rc;
    if (n > 255 * 4)
        return -EINVAL;
    rc = buf_reserve(b, ATOM_MAX_ENC);
    if (rc)
        return rc;
    int idx = 0;
    if (ei_encode_atom_len_as((char *)b->data + b->len, &idx, name, (int)n, ERLANG_UTF8,
                              ERLANG_UTF8) < 0)
        return -EINVAL;
    b->len += (size_t)idx;
    return 0;
}

int enc_long(struct buf *b, int64_t v)
{
    if (v >= 0 && v <= 255) {
        uint8_t t[2] = {TT_SMALL_INT, (uint8_t)v};
        return buf_append(b, t, 2);
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        uint8_t t[5] = {TT_INT};
        put_u32(t + 1, (uint32_t)v);
        return buf_append(b, t, 5);
    }
    int rc = buf_reserve(b, 16);
    if (rc)
        return rc;
    int idx = 0;
    if (ei_encode_longlong((char *)b->data + b->len, &idx, (long long)v) < 0)
        return -EINVAL;
    b->len += (size_t)idx;
    return 0;
}

int enc_tuple(struct buf *b, uint32_t arity)
{
    if (arity <= 255) {
        uint8_t h[2] = {TT_SMALL_TUPLE, (uint8_t)arity};
        return buf_append(b, h, 2);
    }
    int rc = buf_put_u8(b, TT_LARGE_TUPLE);
    return rc ? rc : buf_put_u32(b, arity);
}

int enc_list(struct buf *b, uint32_t n)
{
    int rc = buf_put_u8(b, TT_LIST);
    return rc ? rc : buf_put_u32(b, n);
}

int enc_nil(struct buf *b) { return buf_put_u8(b, TT_NIL); }

int enc_raw(struct buf *b, struct term t) { return buf_append(b, t.p, t.len); }

int enc_binary(struct buf *b, const void *p, uint32_t n)
{
    int rc = buf_put_u8(b, TT_BINARY);
    if (!rc)
        rc = buf_put_u32(b, n);
    return rc ? rc : buf_append(b, p, n);
}

int enc_pid(struct buf *b, const char *node, uint32_t id, uint32_t serial, uint32_t creation)
{
    erlang_pid pid;
    memset(&pid, 0, sizeof pid);
    if (strlen(node) >= sizeof pid.node)
        return -EINVAL;
    strcpy(pid.node, node);
    pid.num = id;
    pid.serial = serial;
    pid.creation = creation;
    int rc = buf_reserve(b, ATOM_MAX_ENC + 16);
    if (rc)
        return rc;
    int idx = 0;
    if (ei_encode_pid((char *)b->data + b->len, &idx, &pid) < 0)
        return -EINVAL;
    b->len += (size_t)idx;
    return 0;
}

int enc_ref(struct buf *b, const char *node, uint32_t creation, const uint32_t ids[3])
{
    erlang_ref ref;
    memset(&ref, 0, sizeof ref);
    if (strlen(node) >= sizeof ref.node)
        return -EINVAL;
    strcpy(ref.node, node);
    ref.len = 3;
    memcpy(ref.n, ids, 3 * sizeof ids[0]);
    ref.creation = creation;
    int rc = buf_reserve(b, ATOM_MAX_ENC + 32);
    if (rc)
        return rc;
    int idx = 0;
    if (ei_encode_ref((char *)b->data + b->len, &idx, &ref) < 0)
        return -EINVAL;
    b->len += (size_t)idx;
    return 0;
}

int enc_atom_pair(struct buf *b, const char *a, const char *c)
{
    int rc = enc_tuple(b, 2);
    if (!rc)
        rc = enc_atom(b, a);
    return rc ? rc : enc_atom(b, c);
}

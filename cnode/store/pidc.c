/*
 * Pid compaction; see pidc.h for the stored forms.
 *
 * Nodes are found by their key bytes (pid tag, atom encoding, creation)
 * in a chained table, and by index in an array whose freed indexes are
 * reused. Packing a run of values of one node (the usual case: one client
 * node locking many keys) compares against the node packed last before
 * hashing anything.
 *
 * Invariants: node[i] is NULL exactly when i is on the free-index stack or
 * i >= nnode; a node's refs is the number of stored packed values naming
 * it, and a node with refs 0 does not exist.
 */
#include "pidc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define NONE UINT32_MAX
#define PACKED 0x00
#define ESCAPE 0x01

struct pnode {
    struct table_node link; /* in pc->names */
    uint32_t refs, idx;
    uint16_t alen;          /* atom encoding, header included */
    uint8_t clen;           /* creation bytes: 4 (NEW_PID_EXT) or 1 (PID_EXT) */
    uint8_t key[];          /* pid tag, atom encoding, creation */
};

struct pidc {
    struct table names;
    uint64_t seed;
    struct pnode **node;
    uint32_t *free_idx;
    uint32_t nnode, cap, nfree, count;
    uint32_t last; /* index of the node packed last, NONE if gone */
    size_t bytes;  /* node allocations */
    uint8_t key[1 + PIDC_MAX_ATOM + 4];
    uint8_t out[PIDC_MAX_PID];
};

/* A pid value taken apart; key fields point into the value. */
struct pid {
    const uint8_t *atom, *creation;
    uint32_t alen, clen, id, serial;
    uint8_t tag;
};

static size_t chunk(size_t n) { return (n + 8 + 15) & ~(size_t)15; }
static size_t key_len(const struct pnode *n) { return 1 + (size_t)n->alen + n->clen; }
static size_t node_size(size_t klen) { return offsetof(struct pnode, key) + klen; }

static struct pnode *node_of(const struct table_node *tn)
{
    return (struct pnode *)(void *)((char *)(uintptr_t)tn - offsetof(struct pnode, link));
}

static struct term node_key(const struct table_node *tn)
{
    const struct pnode *n = node_of(tn);
    return (struct term){n->key, (uint32_t)key_len(n)};
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

size_t pidc_varint_len(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t pidc_varint_put(uint8_t *out, uint32_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t pidc_varint_get(const uint8_t *in, size_t len, uint32_t *v)
{
    uint32_t r = 0;
    for (size_t i = 0; i < len && i < 5; i++) {
        r |= (uint32_t)(in[i] & 0x7f) << (7 * i);
        if (!(in[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* Is v exactly one pid, with an atom we would intern? Any atom encoding
 * is accepted: its bytes are kept as they are. */
static int parse_pid(struct term v, struct pid *p)
{
    if (v.len < 3 || (v.p[0] != TT_NEW_PID && v.p[0] != TT_PID))
        return 0;
    uint32_t hdr, n;
    switch (v.p[1]) {
    case TT_SMALL_ATOM_UTF8:
    case TT_SMALL_ATOM:
        hdr = 2;
        n = v.p[2];
        break;
    case TT_ATOM_UTF8:
    case TT_ATOM:
        if (v.len < 4)
            return 0;
        hdr = 3;
        n = (uint32_t)v.p[2] << 8 | v.p[3];
        break;
    default:
        return 0;
    }
    p->tag = v.p[0];
    p->alen = hdr + n;
    p->clen = p->tag == TT_NEW_PID ? 4 : 1;
    if (p->alen > PIDC_MAX_ATOM || v.len != 1 + p->alen + 8 + p->clen)
        return 0;
    p->atom = v.p + 1;
    p->id = get32(p->atom + p->alen);
    p->serial = get32(p->atom + p->alen + 4);
    p->creation = p->atom + p->alen + 8;
    return 1;
}

struct pidc *pidc_new(uint64_t seed)
{
    struct pidc *pc = calloc(1, sizeof *pc);
    if (!pc)
        return NULL;
    pc->seed = seed;
    pc->last = NONE;
    table_init(&pc->names, node_key, seed);
    if (table_reserve(&pc->names)) {
        free(pc);
        return NULL;
    }
    return pc;
}

void pidc_free(struct pidc *pc)
{
    if (!pc)
        return;
    for (uint32_t i = 0; i < pc->nnode; i++)
        free(pc->node[i]);
    free(pc->node);
    free(pc->free_idx);
    table_fini(&pc->names);
    free(pc);
}

static int node_matches(const struct pnode *n, const struct pid *p)
{
    return n->key[0] == p->tag && n->alen == p->alen && n->clen == p->clen &&
           memcmp(n->key + 1, p->atom, p->alen) == 0 &&
           memcmp(n->key + 1 + p->alen, p->creation, p->clen) == 0;
}

static int grow_index(struct pidc *pc)
{
    uint32_t cap = pc->cap ? pc->cap * 2 : 16;
    if (cap > PIDC_MAX_NODES)
        cap = PIDC_MAX_NODES;
    struct pnode **node = realloc(pc->node, cap * sizeof *node);
    if (!node)
        return -1;
    pc->node = node;
    uint32_t *fi = realloc(pc->free_idx, cap * sizeof *fi);
    if (!fi)
        return -1;
    pc->free_idx = fi;
    pc->cap = cap;
    return 0;
}

/* Intern p's node; NONE when full or out of memory. */
static uint32_t node_get(struct pidc *pc, const struct pid *p)
{
    if (pc->last != NONE && node_matches(pc->node[pc->last], p))
        return pc->last;
    size_t klen = 1 + (size_t)p->alen + p->clen;
    pc->key[0] = p->tag;
    memcpy(pc->key + 1, p->atom, p->alen);
    memcpy(pc->key + 1 + p->alen, p->creation, p->clen);
    struct term key = {pc->key, (uint32_t)klen};
    uint64_t h = term_hash_seed(key.p, key.len, pc->seed);
    struct table_node *tn = table_find(&pc->names, key, h);
    if (tn)
        return node_of(tn)->idx;
    if (pc->count >= PIDC_MAX_NODES || table_reserve(&pc->names))
        return NONE;
    if (!pc->nfree && pc->nnode == pc->cap && grow_index(pc))
        return NONE;
    struct pnode *n = malloc(node_size(klen));
    if (!n)
        return NONE;
    n->refs = 0;
    n->idx = pc->nfree ? pc->free_idx[--pc->nfree] : pc->nnode++;
    n->alen = (uint16_t)p->alen;
    n->clen = (uint8_t)p->clen;
    memcpy(n->key, pc->key, klen);
    pc->node[n->idx] = n;
    table_insert(&pc->names, &n->link, h);
    pc->count++;
    pc->bytes += chunk(node_size(klen));
    return n->idx;
}

size_t pidc_pack(struct pidc *pc, struct term val, uint8_t out[PIDC_MAX_PACKED])
{
    struct pid p;
    if (!parse_pid(val, &p))
        return 0;
    uint32_t idx = node_get(pc, &p);
    if (idx == NONE)
        return 0;
    pc->node[idx]->refs++;
    pc->last = idx;
    size_t o = 0;
    out[o++] = PACKED;
    o += pidc_varint_put(out + o, idx);
    o += pidc_varint_put(out + o, p.id);
    o += pidc_varint_put(out + o, p.serial);
    return o;
}

size_t pidc_raw_len(struct term val)
{
    return val.len && val.p[0] <= ESCAPE ? (size_t)val.len + 1 : val.len;
}

void pidc_put_raw(uint8_t *dst, struct term val)
{
    if (!val.len)
        return;
    if (val.p[0] <= ESCAPE)
        *dst++ = ESCAPE;
    memmove(dst, val.p, val.len);
}

/* Node index, id and serial of a packed value. */
static void unpack_fields(const uint8_t *s, size_t len, uint32_t f[3])
{
    size_t o = 1;
    for (int i = 0; i < 3; i++) {
        size_t n = pidc_varint_get(s + o, len - o, &f[i]);
        assert(n);
        o += n;
    }
    assert(o == len);
}

void pidc_drop(struct pidc *pc, const uint8_t *stored, size_t len)
{
    if (!len || stored[0] != PACKED)
        return;
    uint32_t f[3];
    unpack_fields(stored, len, f);
    struct pnode *n = pc->node[f[0]];
    assert(n && n->refs > 0);
    if (--n->refs)
        return;
    struct term key = {n->key, (uint32_t)key_len(n)};
    table_remove(&pc->names, &n->link, term_hash_seed(key.p, key.len, pc->seed));
    pc->node[n->idx] = NULL;
    pc->free_idx[pc->nfree++] = n->idx;
    if (pc->last == n->idx)
        pc->last = NONE;
    pc->count--;
    pc->bytes -= chunk(node_size(key.len));
    free(n);
}

struct term pidc_unpack(struct pidc *pc, const uint8_t *stored, size_t len)
{
    if (!len)
        return (struct term){stored, 0};
    if (stored[0] == ESCAPE)
        return (struct term){stored + 1, (uint32_t)len - 1};
    if (stored[0] != PACKED)
        return (struct term){stored, (uint32_t)len};
    uint32_t f[3];
    unpack_fields(stored, len, f);
    const struct pnode *n = pc->node[f[0]];
    assert(n);
    uint8_t *o = pc->out;
    *o++ = n->key[0];
    memcpy(o, n->key + 1, n->alen);
    o += n->alen;
    put32(o, f[1]);
    put32(o + 4, f[2]);
    o += 8;
    memcpy(o, n->key + 1 + n->alen, n->clen);
    o += n->clen;
    return (struct term){pc->out, (uint32_t)(o - pc->out)};
}

size_t pidc_node_count(const struct pidc *pc) { return pc->count; }

size_t pidc_mem_bytes(const struct pidc *pc)
{
    return chunk(sizeof *pc) + pc->bytes + table_mem_bytes(&pc->names) +
           (pc->cap ? chunk(pc->cap * sizeof *pc->node) + chunk(pc->cap * sizeof *pc->free_idx) : 0);
}

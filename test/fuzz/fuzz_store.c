/*
 * Fuzz target: the lease store (cnode/store) against a model.
 *
 * The store packs pid values against a table of node names, keeps leases
 * in a slab, indexes them by hash bits and expires them from a heap; what
 * it hands back must still be byte-identical to what it was given. Input:
 * a byte program. Each step reads an op byte, then for puts the canonical
 * form of the next external term in the input (any term the validator
 * accepts, pids of every encoding included) as the value, a key number
 * (one of 16 small keys, so keys collide and get rewritten), a lease
 * length, and a clock step. Checked after every step: each of the 16 keys
 * reads exactly as the model says (value bytes, expiry), the lease count
 * never falls below the live leases, and iteration sees exactly the live
 * leases. Expiry runs with a small budget so reclaiming spans many steps.
 */
#include <errno.h>
#include <string.h>

#include "cnode/core/buf.h"
#include "cnode/store/store.h"
#include "ei_glue/term.h"
#include "fuzz.h"

#define NKEYS 16

struct model {
    struct buf val[NKEYS];
    int64_t expire[NKEYS]; /* 0: absent */
};

struct reader {
    const uint8_t *p;
    size_t len, pos;
};

static int rd_byte(struct reader *r, uint8_t *b)
{
    if (r->pos >= r->len)
        return -1;
    *b = r->p[r->pos++];
    return 0;
}

/* Key i as a term: {k, i} in external format (canonical). */
static struct term key_term(uint8_t i, uint8_t out[8])
{
    const uint8_t k[] = {104, 2, 119, 1, 'k', 97, i};
    memcpy(out, k, sizeof k);
    return (struct term){out, sizeof k};
}

static int live(const struct model *m, int i, int64_t now)
{
    return m->expire[i] > now;
}

struct seen {
    const struct model *m;
    int64_t now;
    size_t n;
};

static int on_lease(void *ud, struct term key, struct term val, int64_t expire_at)
{
    struct seen *s = ud;
    FUZZ_CHECK(key.len == 7 && key.p[6] < NKEYS);
    int i = key.p[6];
    FUZZ_CHECK(live(s->m, i, s->now));
    FUZZ_CHECK(expire_at == s->m->expire[i]);
    FUZZ_CHECK(val.len == s->m->val[i].len && !memcmp(val.p, s->m->val[i].data, val.len));
    s->n++;
    return 0;
}

static void check(struct store *st, const struct model *m, int64_t now)
{
    size_t nlive = 0;
    for (int i = 0; i < NKEYS; i++) {
        uint8_t kb[8];
        struct term v = {NULL, 0};
        int64_t exp = 0;
        int rc = store_lease_get(st, key_term((uint8_t)i, kb), &v, &exp);
        if (live(m, i, now)) {
            nlive++;
            FUZZ_CHECK(rc == 0);
            FUZZ_CHECK(exp == m->expire[i]);
            FUZZ_CHECK(v.len == m->val[i].len && !memcmp(v.p, m->val[i].data, v.len));
        } else {
            FUZZ_CHECK(rc == -ENOENT);
        }
    }
    FUZZ_CHECK(store_lease_count(st) >= nlive);
    struct seen s = {m, now, 0};
    store_foreach_lease(st, on_lease, &s);
    FUZZ_CHECK(s.n == nlive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_cfg cfg = {.hash_seed = 42};
    struct store *st = store_new(&cfg);
    FUZZ_CHECK(st != NULL);
    struct model m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < NKEYS; i++)
        buf_init(&m.val[i]);
    struct buf canon;
    buf_init(&canon);
    struct reader r = {data, size, 0};
    int64_t now = 1;
    store_advance(st, now, 0);
    uint8_t op, kb[8];
    while (rd_byte(&r, &op) == 0) {
        uint8_t k = 0, len = 0, step = 0;
        if (rd_byte(&r, &k) || rd_byte(&r, &len) || rd_byte(&r, &step))
            break;
        int i = k % NKEYS;
        struct term key = key_term((uint8_t)i, kb);
        switch (op % 4) {
        case 0:
        case 1: { /* put the next term of the input as the value */
            size_t pos = r.pos;
            buf_reset(&canon);
            if (term_canon(r.p, r.len, &pos, &canon) != 0) {
                r.pos = r.len; /* the rest is not a term: stop */
                break;
            }
            r.pos = pos;
            int64_t exp = now + 1 + len;
            int rc = store_lease_put(st, key, (struct term){canon.data, (uint32_t)canon.len}, exp);
            if (rc == -ENOMEM)
                break;
            FUZZ_CHECK(rc == 0);
            buf_reset(&m.val[i]);
            FUZZ_CHECK(buf_append(&m.val[i], canon.data, canon.len) == 0);
            m.expire[i] = exp;
            break;
        }
        case 2: { /* delete */
            int rc = store_lease_delete(st, key);
            FUZZ_CHECK(rc == (live(&m, i, now) ? 0 : -ENOENT));
            m.expire[i] = 0;
            break;
        }
        case 3: { /* update to another key's value (a copy across slots) */
            int j = len % NKEYS;
            if (!live(&m, j, now))
                break;
            struct buf copy;
            buf_init(&copy);
            FUZZ_CHECK(buf_append(&copy, m.val[j].data, m.val[j].len) == 0);
            int rc = store_lease_update(st, key, (struct term){copy.data, (uint32_t)copy.len});
            FUZZ_CHECK(rc == (live(&m, i, now) ? 0 : -ENOENT));
            if (!rc) {
                buf_reset(&m.val[i]);
                FUZZ_CHECK(buf_append(&m.val[i], copy.data, copy.len) == 0);
            }
            buf_free(&copy);
            break;
        }
        }
        now += step % 8;
        store_advance(st, now, 1 + step % 3);
        check(st, &m, now);
    }
    for (int i = 0; i < NKEYS; i++)
        buf_free(&m.val[i]);
    buf_free(&canon);
    store_free(st);
    return 0;
}

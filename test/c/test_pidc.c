/*
 * Pid packing (cnode/store/pidc.c): varints, byte-exact round trips of
 * pids of every encoding, values left as they are, node interning and its
 * cap; then the store's round trip of values through it: whatever goes in
 * comes back byte for byte, packed or not, in place or moved, including
 * spans the store itself handed out.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cnode/store/hq.h"
#include "cnode/store/pidc.h"
#include "cnode/store/slab.h"
#include "cnode/store/store.h"
#include "cnode/store/store_int.h"

/* ---- pidc ---- */

static void test_varint(void **state)
{
    (void)state;
    static const uint32_t v[] = {0, 1, 127, 128, 16383, 16384, 2097151, 2097152,
                                 268435455, 268435456, UINT32_MAX};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t b[8];
        size_t n = pidc_varint_put(b, v[i]);
        assert_int_equal(n, pidc_varint_len(v[i]));
        uint32_t r = 0;
        assert_int_equal(pidc_varint_get(b, n, &r), n);
        assert_int_equal(r, v[i]);
        assert_int_equal(pidc_varint_get(b, n - 1, &r), 0); /* cut short */
    }
    static const uint8_t overlong[6] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    uint32_t r;
    assert_int_equal(pidc_varint_get(overlong, 6, &r), 0);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* A pid: tag 88 (NEW_PID_EXT, 4-byte creation) or 103 (PID_EXT, 1 byte);
 * node atom with encoding atag: 119/115 one length byte, 118/100 two. */
static struct term mkpid(uint8_t *b, uint8_t tag, uint8_t atag, const char *node, size_t nlen,
                         uint32_t id, uint32_t serial, uint32_t creation)
{
    size_t o = 0;
    b[o++] = tag;
    b[o++] = atag;
    if (atag == 118 || atag == 100)
        b[o++] = (uint8_t)(nlen >> 8);
    b[o++] = (uint8_t)nlen;
    memcpy(b + o, node, nlen);
    o += nlen;
    put32(b + o, id);
    put32(b + o + 4, serial);
    o += 8;
    if (tag == 88) {
        put32(b + o, creation);
        o += 4;
    } else {
        b[o++] = (uint8_t)creation;
    }
    return (struct term){b, (uint32_t)o};
}

/* Pids of every shape pidc packs; buf holds them. */
static size_t pid_zoo(uint8_t buf[][2100], struct term *t)
{
    static char longnode[2000];
    memset(longnode, 'n', sizeof longnode);
    memcpy(longnode, "long@", 5);
    const char *utf8 = "n\xc3\xb6" "de\xe2\x82\xac@h\xc3\xb8st"; /* nöde€@høst */
    size_t n = 0;
    t[n] = mkpid(buf[n], 88, 119, "bench_client@localhost", 22, 90, 0, 0x6508a3c1u), n++;
    t[n] = mkpid(buf[n], 88, 119, "a@b", 3, 0, 0, 7), n++;
    t[n] = mkpid(buf[n], 88, 119, "a@b", 3, UINT32_MAX, UINT32_MAX, 7), n++;
    t[n] = mkpid(buf[n], 88, 119, "a@b", 3, 128, 16384, UINT32_MAX), n++;
    t[n] = mkpid(buf[n], 88, 119, utf8, strlen(utf8), 7, 1, 3), n++;
    t[n] = mkpid(buf[n], 88, 118, longnode, 1018, 12345, 2, 99), n++; /* biggest interned */
    t[n] = mkpid(buf[n], 88, 118, longnode, 300, 1, 0, 5), n++;
    t[n] = mkpid(buf[n], 88, 118, "short@host", 10, 1, 0, 5), n++; /* not canonical, kept as is */
    t[n] = mkpid(buf[n], 88, 100, "latin@host", 10, 4, 5, 6), n++;
    t[n] = mkpid(buf[n], 88, 115, "latin@host", 10, 4, 5, 6), n++;
    t[n] = mkpid(buf[n], 103, 100, "old@host", 8, 40, 0, 2), n++; /* PID_EXT */
    t[n] = mkpid(buf[n], 103, 119, "old@host", 8, 40, 0, 3), n++;
    t[n] = mkpid(buf[n], 103, 119, "old@host", 8, 40, 0, 255), n++;
    return n;
}

/* Values pidc must leave as they are (still round trip through raw). */
static size_t non_pid_zoo(uint8_t buf[][2100], struct term *t)
{
    static char huge[2000];
    memset(huge, 'x', sizeof huge);
    size_t n = 0;
    struct term p = mkpid(buf[n] + 2, 88, 119, "a@b", 3, 1, 0, 1);
    buf[n][0] = 104, buf[n][1] = 1; /* {Pid} */
    t[n] = (struct term){buf[n], p.len + 2}, n++;
    p = mkpid(buf[n], 88, 119, "a@b", 3, 1, 0, 1);
    buf[n][p.len] = 106; /* a pid and a trailing byte */
    t[n] = (struct term){buf[n], p.len + 1}, n++;
    p = mkpid(buf[n], 88, 119, "a@b", 3, 1, 0, 1);
    t[n] = (struct term){buf[n], p.len - 1}, n++; /* cut short */
    t[n] = mkpid(buf[n], 88, 118, huge, 1021, 1, 0, 1), n++; /* atom too long to intern */
    p = mkpid(buf[n], 88, 119, "a@b", 3, 1, 0, 1);
    buf[n][1] = 82; /* ATOM_CACHE_REF node */
    t[n] = p, n++;
    memcpy(buf[n], "\x62\x00\x00\x01\x00", 5); /* 256 */
    t[n] = (struct term){buf[n], 5}, n++;
    memcpy(buf[n], "\x00\x01\x02", 3); /* starts with the packed marker */
    t[n] = (struct term){buf[n], 3}, n++;
    memcpy(buf[n], "\x01", 1); /* starts with the escape */
    t[n] = (struct term){buf[n], 1}, n++;
    memcpy(buf[n], "\x02\x00", 2);
    t[n] = (struct term){buf[n], 2}, n++;
    t[n] = (struct term){NULL, 0}, n++;
    buf[n][0] = 88; /* too short to be anything */
    t[n] = (struct term){buf[n], 1}, n++;
    return n;
}

static int same(struct term a, struct term b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static uint8_t zoo[16][2100];

static void test_pidc_round_trips(void **state)
{
    (void)state;
    struct pidc *pc = pidc_new(42);
    assert_non_null(pc);
    struct term t[16];
    size_t n = pid_zoo(zoo, t);
    uint8_t packed[16][PIDC_MAX_PACKED];
    size_t plen[16];
    for (size_t i = 0; i < n; i++) {
        plen[i] = pidc_pack(pc, t[i], packed[i]);
        assert_true(plen[i] >= 4 && plen[i] <= PIDC_MAX_PACKED);
        assert_true(plen[i] < t[i].len);
        assert_int_equal(packed[i][0], 0x00);
    }
    /* Two "a@b" pids of one creation share a node; another creation, or
     * another spelling of the same atom (118/119, 100/115) does not. */
    assert_int_equal(pidc_node_count(pc), n - 1);
    for (size_t i = 0; i < n; i++) {
        struct term back = pidc_unpack(pc, packed[i], plen[i]);
        if (!same(back, t[i]))
            fail_msg("pid %zu: unpacked bytes differ", i);
    }
    for (size_t i = 0; i < n; i++)
        pidc_drop(pc, packed[i], plen[i]);
    assert_int_equal(pidc_node_count(pc), 0);
    pidc_free(pc);
}

static void test_pidc_not_packed(void **state)
{
    (void)state;
    struct pidc *pc = pidc_new(42);
    assert_non_null(pc);
    struct term t[16];
    size_t n = non_pid_zoo(zoo, t);
    for (size_t i = 0; i < n; i++) {
        uint8_t packed[PIDC_MAX_PACKED], stored[2200];
        assert_int_equal(pidc_pack(pc, t[i], packed), 0);
        size_t len = pidc_raw_len(t[i]);
        int escaped = t[i].len && t[i].p[0] <= 1;
        assert_int_equal(len, t[i].len + (size_t)escaped);
        pidc_put_raw(stored, t[i]);
        struct term back = pidc_unpack(pc, stored, len);
        if (!same(back, t[i]))
            fail_msg("value %zu: raw round trip differs", i);
        pidc_drop(pc, stored, len); /* a no-op for raw values */
    }
    assert_int_equal(pidc_node_count(pc), 0);
    pidc_free(pc);
}

static void test_pidc_interning(void **state)
{
    (void)state;
    struct pidc *pc = pidc_new(7);
    assert_non_null(pc);
    enum { N = 3000 };
    static uint8_t stored[N][PIDC_MAX_PACKED];
    static size_t len[N];
    static uint32_t node_of[N];
    const char *nodes[3] = {"n1@h", "node2@h", "n3@h"};
    size_t mem0 = pidc_mem_bytes(pc);
    for (uint32_t i = 0; i < N; i++) {
        uint8_t b[64];
        /* Runs of one node, then alternation: the last-node shortcut and
         * the table both find the same node. */
        uint32_t k = node_of[i] = i < N / 2 ? i / 500 % 3 : i % 3;
        struct term p = mkpid(b, 88, 119, nodes[k], strlen(nodes[k]), i, i % 3, 1000 + k);
        len[i] = pidc_pack(pc, p, stored[i]);
        assert_true(len[i] > 0);
        struct term back = pidc_unpack(pc, stored[i], len[i]);
        assert_true(same(back, p));
    }
    assert_int_equal(pidc_node_count(pc), 3);
    for (uint32_t i = 0; i < N; i++) {
        if (node_of[i] != 1)
            pidc_drop(pc, stored[i], len[i]);
    }
    assert_int_equal(pidc_node_count(pc), 1); /* only node2's values left */
    for (uint32_t i = 0; i < N; i++) {
        if (node_of[i] != 1)
            continue;
        struct term back = pidc_unpack(pc, stored[i], len[i]);
        assert_int_equal(back.len, 1 + 2 + 7 + 12);
        assert_memory_equal(back.p + 3, "node2@h", 7);
        pidc_drop(pc, stored[i], len[i]);
    }
    assert_int_equal(pidc_node_count(pc), 0);
    assert_true(pidc_mem_bytes(pc) <= mem0 + 16 * 2 * sizeof(void *) + 64);
    pidc_free(pc);
}

/* Past PIDC_MAX_NODES nodes, values are stored raw; a freed node's index
 * is reused. */
static void test_pidc_node_cap(void **state)
{
    (void)state;
    struct pidc *pc = pidc_new(9);
    assert_non_null(pc);
    uint8_t (*stored)[PIDC_MAX_PACKED] = calloc(PIDC_MAX_NODES, PIDC_MAX_PACKED);
    size_t *len = calloc(PIDC_MAX_NODES, sizeof *len);
    assert_non_null(stored);
    assert_non_null(len);
    uint8_t b[64], eb[64], out[PIDC_MAX_PACKED];
    char node[32];
    for (uint32_t i = 0; i < PIDC_MAX_NODES; i++) {
        int nl = snprintf(node, sizeof node, "n%u@h", i);
        len[i] = pidc_pack(pc, mkpid(b, 88, 119, node, (size_t)nl, 1, 0, 1), stored[i]);
        assert_true(len[i] > 0 && len[i] <= 7);
    }
    assert_int_equal(pidc_node_count(pc), PIDC_MAX_NODES);
    struct term extra = mkpid(eb, 88, 119, "extra@h", 7, 1, 0, 1);
    assert_int_equal(pidc_pack(pc, extra, out), 0);
    /* A value of an interned node still packs. */
    int nl = snprintf(node, sizeof node, "n%u@h", 77u);
    size_t l = pidc_pack(pc, mkpid(b, 88, 119, node, (size_t)nl, 2, 0, 1), out);
    assert_true(l > 0);
    pidc_drop(pc, out, l);
    pidc_drop(pc, stored[500], len[500]);
    l = pidc_pack(pc, extra, out);
    assert_true(l > 0);
    assert_true(same(pidc_unpack(pc, out, l), extra));
    pidc_drop(pc, out, l);
    for (uint32_t i = 0; i < PIDC_MAX_NODES; i++)
        if (i != 500)
            pidc_drop(pc, stored[i], len[i]);
    assert_int_equal(pidc_node_count(pc), 0);
    pidc_free(pc);
    free(stored);
    free(len);
}

/* ---- the store ---- */

struct got {
    size_t n;
    uint8_t val[8][2100];
    uint32_t len[8];
};

static void on_wake(void *ud, enum store_wait_kind kind, const void *ctx, size_t ctxlen,
                    struct term value)
{
    (void)ctx;
    (void)ctxlen;
    struct got *g = ud;
    if (kind != STORE_WAIT_FOR || g->n == 8)
        return;
    memcpy(g->val[g->n], value.p, value.len);
    g->len[g->n++] = value.len;
}

static struct store *new_store(struct got *g)
{
    struct store_cfg cfg = {.on_wake = on_wake, .ud = g, .hash_seed = 77};
    struct store *s = store_new(&cfg);
    assert_non_null(s);
    return s;
}

static struct term key_n(uint8_t b[6], uint32_t n)
{
    b[0] = 98;
    put32(b + 1, n);
    return (struct term){b, 5};
}

static void expect_val(struct store *s, struct term key, struct term want, int64_t at)
{
    struct term v;
    int64_t e;
    assert_int_equal(store_lease_get(s, key, &v, &e), 0);
    if (!same(v, want))
        fail_msg("value read back differs (%u bytes, %u expected)", v.len, want.len);
    assert_int_equal(e, at);
}

struct seen {
    struct term *want;
    size_t n, visited;
};

static int visit(void *ud, struct term key, struct term val, int64_t at)
{
    struct seen *sn = ud;
    uint32_t k = (uint32_t)key.p[4];
    assert_true(k < sn->n);
    assert_true(same(val, sn->want[k]));
    assert_int_equal(at, 1000 + k);
    sn->visited++;
    return 0;
}

static void test_store_values_round_trip(void **state)
{
    (void)state;
    static uint8_t b2[16][2100];
    struct got g = {0};
    struct store *s = new_store(&g);
    struct term t[32];
    size_t n = pid_zoo(zoo, t);
    n += non_pid_zoo(b2, t + n);
    uint8_t kb[6];
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(store_waiter_add(s, key_n(kb, i), STORE_WAIT_FOR, 50, "w", 1), 0);
        g.n = 0;
        assert_int_equal(store_lease_put(s, key_n(kb, i), t[i], 1000 + i), 0);
        assert_int_equal(g.n, 1);
        assert_true(same((struct term){g.val[0], g.len[0]}, t[i]));
    }
    for (uint32_t i = 0; i < n; i++)
        expect_val(s, key_n(kb, i), t[i], 1000 + i);
    struct seen sn = {t, n, 0};
    store_foreach_lease(s, visit, &sn);
    assert_int_equal(sn.visited, n);
    store_free(s);
}

/* One key through values of every size and form, by put and update: the
 * block is rewritten in place or moved, and the expiry order holds. */
static void test_store_value_moves(void **state)
{
    (void)state;
    struct got g = {0};
    struct store *s = new_store(&g);
    static uint8_t raw[8][700];
    struct term t[32];
    size_t n = pid_zoo(zoo, t);
    size_t lens[8] = {1, 20, 126, 127, 128, 300, 600, 0};
    for (size_t i = 0; i < 8; i++) {
        memset(raw[i], (int)(0x60 + i), sizeof raw[i]);
        raw[i][0] = i == 1 ? 0x01 : 0x68; /* one needs the escape */
        t[n + i] = (struct term){raw[i], (uint32_t)lens[i]};
    }
    n += 8;
    uint8_t kb[6], ob[6];
    for (uint32_t i = 0; i < 200; i++)
        assert_int_equal(store_lease_put(s, key_n(ob, 100 + i), t[i % n], 5000 + i), 0);
    srand(2);
    int64_t at = 3000;
    for (int r = 0; r < 2000; r++) {
        struct term v = t[(size_t)rand() % n];
        if (r % 3 == 0) {
            at = 3000 + rand() % 1000;
            assert_int_equal(store_lease_put(s, key_n(kb, 1), v, at), 0);
        } else {
            assert_int_equal(store_lease_update(s, key_n(kb, 1), v), 0);
        }
        expect_val(s, key_n(kb, 1), v, at);
        uint32_t o = (uint32_t)rand() % 200;
        expect_val(s, key_n(ob, 100 + o), t[o % n], 5000 + o);
    }
    /* Expiry order: the key first, then the others in order. */
    assert_int_equal(store_next_deadline(s), at);
    assert_int_equal(store_advance(s, at, 10), 1);
    assert_int_equal(store_lease_get(s, key_n(kb, 1), NULL, NULL), -ENOENT);
    for (uint32_t i = 0; i < 200; i++) {
        assert_int_equal(store_next_deadline(s), 5000 + i);
        assert_int_equal(store_advance(s, 5000 + i, 10), 1);
    }
    assert_int_equal(store_lease_count(s), 0);
    assert_int_equal(pidc_node_count(s->pc), 0);
    store_free(s);
}

static int visit_first_key(void *ud, struct term key, struct term val, int64_t at)
{
    (void)val;
    (void)at;
    *(struct term *)ud = key;
    return 1;
}

/* Spans the store handed out, given back to it. */
static void test_store_aliasing(void **state)
{
    (void)state;
    struct got g = {0};
    struct store *s = new_store(&g);
    uint8_t kb[6], pb[64], rb[200];
    struct term pid = mkpid(pb, 88, 119, "x@y", 3, 5, 0, 9);
    memset(rb, 0x6a, sizeof rb);
    struct term raw = {rb, sizeof rb};
    struct term v;
    /* A packed value read back (the store's unpack buffer) put again. */
    assert_int_equal(store_lease_put(s, key_n(kb, 1), pid, 100), 0);
    assert_int_equal(store_lease_get(s, key_n(kb, 1), &v, NULL), 0);
    assert_int_equal(store_lease_put(s, key_n(kb, 2), v, 100), 0);
    assert_int_equal(store_lease_get(s, key_n(kb, 1), &v, NULL), 0);
    assert_int_equal(store_lease_update(s, key_n(kb, 1), v), 0);
    expect_val(s, key_n(kb, 1), pid, 100);
    expect_val(s, key_n(kb, 2), pid, 100);
    /* A raw value read back (inside the lease's block) onto itself, and
     * parts of it, shorter (same block or a smaller one) and in place. */
    assert_int_equal(store_lease_put(s, key_n(kb, 3), raw, 100), 0);
    assert_int_equal(store_lease_get(s, key_n(kb, 3), &v, NULL), 0);
    assert_int_equal(store_lease_put(s, key_n(kb, 3), v, 200), 0);
    expect_val(s, key_n(kb, 3), raw, 200);
    assert_int_equal(store_lease_get(s, key_n(kb, 3), &v, NULL), 0);
    assert_int_equal(store_lease_update(s, key_n(kb, 3), (struct term){v.p + 10, 150}), 0);
    expect_val(s, key_n(kb, 3), (struct term){rb, 150}, 200);
    assert_int_equal(store_lease_get(s, key_n(kb, 3), &v, NULL), 0);
    assert_int_equal(store_lease_update(s, key_n(kb, 3), (struct term){v.p + 1, 149}), 0);
    expect_val(s, key_n(kb, 3), (struct term){rb, 149}, 200);
    assert_int_equal(store_lease_get(s, key_n(kb, 3), &v, NULL), 0);
    assert_int_equal(store_lease_update(s, key_n(kb, 3), (struct term){v.p, 10}), 0);
    expect_val(s, key_n(kb, 3), (struct term){rb, 10}, 200);
    /* The key span of a lease, from iteration, used to delete it. */
    struct term key = {NULL, 0};
    assert_int_equal(store_lease_get(s, key_n(kb, 2), NULL, NULL), 0);
    store_foreach_lease(s, visit_first_key, &key);
    assert_non_null(key.p);
    assert_int_equal(store_lease_delete(s, key), 0);
    assert_int_equal(store_lease_count(s), 2);
    store_free(s);
}

/* Nodes go with their last value; memory returns to the empty store's. */
static void test_store_nodes_freed(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct got g = {0};
    struct store *s = new_store(&g);
    size_t mem0 = store_mem_bytes(s);
    uint8_t kb[6], pb[64];
    char node[32];
    for (uint32_t i = 0; i < N; i++) {
        int nl = snprintf(node, sizeof node, "client%u@host", i % 100);
        struct term p = mkpid(pb, 88, 119, node, (size_t)nl, i, 0, 1);
        assert_int_equal(store_lease_put(s, key_n(kb, i), p, 100 + i % 7), 0);
    }
    assert_int_equal(pidc_node_count(s->pc), 100);
    printf("store: %d leases, 5-byte keys, pids of 100 nodes: %.1f bytes per lease\n", N,
           (double)(store_mem_bytes(s) - mem0) / N);
    for (uint32_t i = 0; i < N; i += 2)
        assert_int_equal(store_lease_delete(s, key_n(kb, i)), 0);
    while (store_advance(s, 1000, 1000) > 0)
        ;
    assert_int_equal(store_lease_count(s), 0);
    assert_int_equal(pidc_node_count(s->pc), 0);
    size_t mem = store_mem_bytes(s);
    /* Left: the slab's spare page, the heap's spare block, small tables. */
    assert_true(mem <= mem0 + SLAB_PAGE + HQ_BLOCK * sizeof(struct hq_slot) + 4096);
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint),
        cmocka_unit_test(test_pidc_round_trips),
        cmocka_unit_test(test_pidc_not_packed),
        cmocka_unit_test(test_pidc_interning),
        cmocka_unit_test(test_pidc_node_cap),
        cmocka_unit_test(test_store_values_round_trip),
        cmocka_unit_test(test_store_value_moves),
        cmocka_unit_test(test_store_aliasing),
        cmocka_unit_test(test_store_nodes_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

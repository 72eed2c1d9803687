/*
 * holders: monitors on lease holders; see holders.h for the model.
 *
 * An entry's bytes are key | pid | ref | node name (NUL-terminated), in one
 * allocation. Buckets are allocated on the first watch, so a server that
 * never watches pays nothing.
 */
#include "holders.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../ei_glue/enc.h"

struct holder {
    struct holder *next_key, *next_ref;
    uint32_t hkey, href;
    int lost;            /* no monitor in place: (re)send when connected */
    uint32_t klen, plen, rlen;
    uint8_t data[];      /* key | pid | ref | node\0 */
};

struct holders {
    struct node *node;
    size_t max, count, nb;
    struct holder **by_key, **by_ref;
    struct buf ref;
};

static uint32_t fnv(struct term t)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < t.len; i++)
        h = (h ^ t.p[i]) * 16777619u;
    return h;
}

static struct term h_key(const struct holder *e) { return (struct term){e->data, e->klen}; }
static struct term h_pid(const struct holder *e)
{
    return (struct term){e->data + e->klen, e->plen};
}
static struct term h_ref(const struct holder *e)
{
    return (struct term){e->data + e->klen + e->plen, e->rlen};
}
static const char *h_node(const struct holder *e)
{
    return (const char *)e->data + e->klen + e->plen + e->rlen;
}

struct holders *holders_new(struct node *n, size_t max)
{
    struct holders *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->node = n;
    h->max = max ? max : 1;
    buf_init(&h->ref);
    return h;
}

static int ensure_buckets(struct holders *h)
{
    if (h->nb)
        return 0;
    size_t nb = 64;
    while (nb < h->max / 2 && nb < ((size_t)1 << 20))
        nb <<= 1;
    h->by_key = calloc(nb, sizeof *h->by_key);
    h->by_ref = calloc(nb, sizeof *h->by_ref);
    if (!h->by_key || !h->by_ref) {
        free(h->by_key);
        free(h->by_ref);
        h->by_key = h->by_ref = NULL;
        return -ENOMEM;
    }
    h->nb = nb;
    return 0;
}

/* ---- monitor signals ---- */

struct mon_args {
    struct term from, to, ref;
    int op;
};

static int ctl_mon(struct buf *out, void *arg)
{
    const struct mon_args *a = arg;
    int rc = enc_tuple(out, 4);
    if (!rc) rc = enc_long(out, a->op);
    if (!rc) rc = enc_raw(out, a->from);
    if (!rc) rc = enc_raw(out, a->to);
    return rc ? rc : enc_raw(out, a->ref);
}

/* MONITOR_P now if the holder's node is connected; else mark the entry
 * lost and get a connection going (holders_conn sends it then). */
static void send_monitor(struct holders *h, struct term from, struct holder *e)
{
    struct conn *c = node_conn_for(h->node, h_pid(e));
    struct mon_args a = {from, h_pid(e), h_ref(e), CTRL_MONITOR_P};
    if (c && node_send_ctrl(c, ctl_mon, &a) == 0) {
        e->lost = 0;
        return;
    }
    e->lost = 1;
    if (!c)
        node_connect(h->node, h_node(e));
}

static void send_demonitor(struct holders *h, struct term from, const struct holder *e)
{
    if (e->lost)
        return;
    struct conn *c = node_conn_for(h->node, h_pid(e));
    struct mon_args a = {from, h_pid(e), h_ref(e), CTRL_DEMONITOR_P};
    if (c)
        node_send_ctrl(c, ctl_mon, &a);
}

/* ---- the indexes ---- */

static struct holder **find_key(struct holders *h, struct term key, uint32_t hk)
{
    struct holder **pp = &h->by_key[hk & (h->nb - 1)];
    while (*pp && !((*pp)->hkey == hk && term_eq(h_key(*pp), key)))
        pp = &(*pp)->next_key;
    return pp;
}

static struct holder **find_ref(struct holders *h, struct term ref, uint32_t hr)
{
    struct holder **pp = &h->by_ref[hr & (h->nb - 1)];
    while (*pp && !((*pp)->href == hr && term_eq(h_ref(*pp), ref)))
        pp = &(*pp)->next_ref;
    return pp;
}

/* Unlink e from both chains and free it. */
static void remove_entry(struct holders *h, struct holder *e)
{
    struct holder **pk = find_key(h, h_key(e), e->hkey);
    if (*pk == e)
        *pk = e->next_key;
    struct holder **pr = find_ref(h, h_ref(e), e->href);
    if (*pr == e)
        *pr = e->next_ref;
    h->count--;
    free(e);
}

static int is_remote_pid(struct holders *h, struct term val, char *nd, size_t cap)
{
    int tag = term_peek(val.p, val.len, 0);
    if (tag != TT_NEW_PID && tag != TT_PID)
        return 0;
    return ctrl_term_node(val, nd, cap) == 0 && strcmp(nd, node_name(h->node)) != 0;
}

int holders_watch(struct holders *h, struct term from, struct term key, struct term val)
{
    char nd[CTRL_NAME_MAX];
    int remote = is_remote_pid(h, val, nd, sizeof nd);
    if (!h->nb && !remote)
        return 0;
    int rc = ensure_buckets(h);
    if (rc)
        return rc;
    uint32_t hk = fnv(key);
    struct holder **pp = find_key(h, key, hk);
    if (*pp) {
        if (remote && term_eq(h_pid(*pp), val))
            return 0; /* an extend by the same holder: the watch stands */
        send_demonitor(h, from, *pp);
        remove_entry(h, *pp);
    }
    if (!remote)
        return 0;
    if (h->count >= h->max)
        return -ENOSPC;
    buf_reset(&h->ref);
    if ((rc = node_make_ref(h->node, &h->ref)))
        return rc;
    size_t nlen = strlen(nd) + 1;
    struct holder *e = malloc(sizeof *e + key.len + val.len + h->ref.len + nlen);
    if (!e)
        return -ENOMEM;
    *e = (struct holder){.klen = key.len, .plen = val.len, .rlen = (uint32_t)h->ref.len};
    memcpy(e->data, key.p, key.len);
    memcpy(e->data + key.len, val.p, val.len);
    memcpy(e->data + key.len + val.len, h->ref.data, h->ref.len);
    memcpy(e->data + key.len + val.len + h->ref.len, nd, nlen);
    e->hkey = hk;
    e->href = fnv(h_ref(e));
    pp = find_key(h, key, hk);
    e->next_key = *pp;
    *pp = e;
    struct holder **pr = &h->by_ref[e->href & (h->nb - 1)];
    e->next_ref = *pr;
    *pr = e;
    h->count++;
    send_monitor(h, from, e);
    return 0;
}

void holders_unwatch(struct holders *h, struct term from, struct term key)
{
    if (!h->nb || !h->count)
        return;
    struct holder **pp = find_key(h, key, fnv(key));
    if (*pp) {
        send_demonitor(h, from, *pp);
        remove_entry(h, *pp);
    }
}

int holders_down(struct holders *h, struct term ref, struct term reason, struct buf *key_out,
                 struct buf *pid_out)
{
    if (!h->nb)
        return 0;
    struct holder **pp = find_ref(h, ref, fnv(ref));
    struct holder *e = *pp;
    if (!e)
        return 0;
    if (term_is_atom(reason.p, reason.len, 0, "noconnection")) {
        e->lost = 1; /* alive or not, we cannot tell: wait for the link */
        return 0;
    }
    buf_reset(key_out);
    buf_reset(pid_out);
    int rc = buf_append(key_out, h_key(e).p, h_key(e).len);
    if (!rc)
        rc = buf_append(pid_out, h_pid(e).p, h_pid(e).len);
    remove_entry(h, e);
    return rc ? 0 : 1;
}

void holders_conn(struct holders *h, struct term from, const char *peer, int up)
{
    if (!h->count)
        return;
    for (size_t b = 0; b < h->nb; b++)
        for (struct holder *e = h->by_key[b]; e; e = e->next_key) {
            if (strcmp(h_node(e), peer) != 0)
                continue;
            if (!up)
                e->lost = 1;
            else if (e->lost)
                send_monitor(h, from, e);
        }
}

size_t holders_sweep(struct holders *h, struct term from, holders_still_fn still, void *ud)
{
    size_t gone = 0;
    for (size_t b = 0; b < h->nb; b++) {
        struct holder *e = h->by_key[b];
        while (e) {
            struct holder *next = e->next_key;
            if (!still(ud, h_key(e), h_pid(e))) {
                send_demonitor(h, from, e);
                remove_entry(h, e);
                gone++;
            }
            e = next;
        }
    }
    return gone;
}

void holders_clear(struct holders *h, struct term from, int demonitor)
{
    for (size_t b = 0; b < h->nb; b++) {
        struct holder *e = h->by_key[b];
        while (e) {
            struct holder *next = e->next_key;
            if (demonitor)
                send_demonitor(h, from, e);
            free(e);
            e = next;
        }
        h->by_key[b] = h->by_ref[b] = NULL;
    }
    h->count = 0;
}

size_t holders_count(const struct holders *h) { return h->count; }

void holders_free(struct holders *h)
{
    if (!h)
        return;
    holders_clear(h, (struct term){NULL, 0}, 0);
    free(h->by_key);
    free(h->by_ref);
    buf_free(&h->ref);
    free(h);
}

/*
 * The node router; see node.h.
 *
 * Local processes are few (locker, rex, net_kernel and, later, C services)
 * and kept in a small array; lookups by name or pid id are linear and
 * cheap at that size. Pids are <Name.Id.0> with this node's creation.
 */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../ei_glue/enc.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../dist/epmd.h"

/* A monitor a peer holds on a tracked process: peer | from | ref bytes. */
struct pmon {
    struct pmon *next;
    uint32_t plen, flen, rlen;
    uint8_t data[];
};

#define PROC_MAX_MONITORS 1024

struct proc {
    char name[256];
    uint32_t id;
    int raw;                  /* takes payloads unvalidated (node_spawn_raw) */
    int track;                /* monitors on it are kept and fire at exit */
    size_t nmons;
    struct pmon *mons;
    node_msg_fn fn;
    void *ud;
    struct buf pid;
};

struct sub {
    node_conn_fn fn;
    void *ud;
};

/* The last failed dial to a peer (node_last_failure). */
#define NODE_FAILS 16
struct dial_fail {
    char peer[HS_NAME_MAX + 1];   /* "" = free */
    char why[256];
};

struct node {
    struct loop *loop;
    struct node_cfg cfg;
    char name[HS_NAME_MAX + 1];
    char cookie[1024];
    uint32_t creation;
    uint16_t port;
    int epmd_fd;
    struct loop_io epmd_io;
    struct conn_set *conns;
    struct tls_ctx *tls;          /* NULL: plain TCP distribution */
    struct proc *procs;
    size_t nprocs;
    uint32_t next_pid;
    uint32_t ref_ids[3];
    struct sub *subs;
    size_t nsubs;
    node_msg_fn spawn_fn;
    void *spawn_ud;
    node_msg_fn demon_fn;         /* DEMONITOR_P of a local process */
    void *demon_ud;
    struct loop_timer periodic;
    struct buf scratch;
    struct conn_ratelim dial_rl;  /* dials refused by the allowlist */
    struct conn_ratelim deny_rl;  /* handshakes refused by the allowlist */
    struct dial_fail fails[NODE_FAILS];   /* node_last_failure; ring */
    unsigned nfails;
};

/* ---- local processes ---- */

static struct proc *proc_by_name(const struct node *n, const char *name)
{
    for (size_t i = 0; i < n->nprocs; i++)
        if (n->procs[i].name[0] && strcmp(n->procs[i].name, name) == 0)
            return &n->procs[i];
    return NULL;
}

/* A pid of ours: NEW_PID_EXT/PID_EXT whose node is us. Peers echo our
 * pids in the encoding we gave them, so byte equality finds them first. */
static struct proc *proc_by_pid(const struct node *n, struct term pid)
{
    for (size_t i = 0; i < n->nprocs; i++)
        if (term_eq((struct term){n->procs[i].pid.data, (uint32_t)n->procs[i].pid.len}, pid))
            return &n->procs[i];
    char nd[CTRL_NAME_MAX];
    if (ctrl_term_node(pid, nd, sizeof nd) || strcmp(nd, n->name) != 0)
        return NULL;
    /* Other encodings of our pids (old PID_EXT): compare canonically. */
    struct buf tmp;
    buf_init(&tmp);
    size_t pos = 0;
    struct proc *found = NULL;
    if (term_canon(pid.p, pid.len, &pos, &tmp) == 0)
        for (size_t i = 0; i < n->nprocs && !found; i++)
            if (term_eq((struct term){n->procs[i].pid.data, (uint32_t)n->procs[i].pid.len},
                        (struct term){tmp.data, (uint32_t)tmp.len}))
                found = &n->procs[i];
    buf_free(&tmp);
    return found;
}

static int spawn(struct node *n, const char *name, int raw, node_msg_fn fn, void *ud,
                 struct term *pid)
{
    if (name && proc_by_name(n, name))
        return -EEXIST;
    struct proc *p = realloc(n->procs, (n->nprocs + 1) * sizeof *p);
    if (!p)
        return -ENOMEM;
    n->procs = p;
    struct proc *np = &n->procs[n->nprocs];
    memset(np, 0, sizeof *np);
    snprintf(np->name, sizeof np->name, "%s", name ? name : "");
    np->id = n->next_pid++;
    np->raw = raw;
    np->fn = fn;
    np->ud = ud;
    buf_init(&np->pid);
    int rc = enc_pid(&np->pid, n->name, np->id, 0, n->creation);
    if (rc)
        return rc;
    n->nprocs++;
    if (pid) {
        pid->p = np->pid.data;
        pid->len = (uint32_t)np->pid.len;
    }
    return 0;
}

int node_spawn(struct node *n, const char *name, node_msg_fn fn, void *ud, struct term *pid)
{
    return spawn(n, name, 0, fn, ud, pid);
}

int node_spawn_raw(struct node *n, const char *name, node_msg_fn fn, void *ud, struct term *pid)
{
    return spawn(n, name, 1, fn, ud, pid);
}

/* ---- monitors on tracked processes ---- */

static void pmon_add(struct proc *p, const char *peer, const struct ctrl *m)
{
    if (p->nmons >= PROC_MAX_MONITORS)
        return; /* bounded: beyond it a monitor is as good as untracked */
    size_t pl = strlen(peer);
    struct pmon *e = malloc(sizeof *e + pl + m->from.len + m->ref.len);
    if (!e)
        return;
    *e = (struct pmon){.plen = (uint32_t)pl, .flen = m->from.len, .rlen = m->ref.len};
    memcpy(e->data, peer, pl);
    memcpy(e->data + pl, m->from.p, m->from.len);
    memcpy(e->data + pl + m->from.len, m->ref.p, m->ref.len);
    e->next = p->mons;
    p->mons = e;
    p->nmons++;
}

static void pmon_drop(struct proc *p, struct term ref)
{
    for (struct pmon **pp = &p->mons; *pp; pp = &(*pp)->next) {
        struct pmon *e = *pp;
        if (term_eq((struct term){e->data + e->plen + e->flen, e->rlen}, ref)) {
            *pp = e->next;
            p->nmons--;
            free(e);
            return;
        }
    }
}

struct pmon_exit {
    struct term from, to, ref;
};

static int ctl_pmon_exit(struct buf *out, void *arg)
{
    const struct pmon_exit *a = arg;
    return ctrl_enc_monitor_exit(out, a->from, NULL, a->to, a->ref, "normal");
}

/* The process exits: every monitor on it fires (reason normal). */
static void pmon_fire(struct node *n, struct proc *p)
{
    while (p->mons) {
        struct pmon *e = p->mons;
        p->mons = e->next;
        char peer[CTRL_NAME_MAX];
        snprintf(peer, sizeof peer, "%.*s", (int)e->plen, (const char *)e->data);
        struct conn *c = conn_find(n->conns, peer);
        struct pmon_exit a = {{p->pid.data, (uint32_t)p->pid.len},
                              {e->data + e->plen, e->flen},
                              {e->data + e->plen + e->flen, e->rlen}};
        if (c && c->state == CONN_UP)
            node_send_ctrl(c, ctl_pmon_exit, &a);
        free(e);
    }
    p->nmons = 0;
}

/* Drop the monitors peer (NULL: anyone) holds on p, without signals. */
static void pmon_forget(struct proc *p, const char *peer)
{
    struct pmon **pp = &p->mons;
    while (*pp) {
        struct pmon *e = *pp;
        if (!peer || (strlen(peer) == e->plen && memcmp(peer, e->data, e->plen) == 0)) {
            *pp = e->next;
            p->nmons--;
            free(e);
        } else {
            pp = &e->next;
        }
    }
}

int node_track_monitors(struct node *n, struct term pid)
{
    struct proc *p = proc_by_pid(n, pid);
    if (!p || !p->fn)
        return -ENOENT;
    p->track = 1;
    return 0;
}

int node_exit(struct node *n, struct term pid)
{
    struct proc *p = proc_by_pid(n, pid);
    if (!p)
        return -ENOENT;
    pmon_fire(n, p);
    /* Procs live in an array whose pid buffers are handed out as spans;
     * an exited proc keeps its slot (no handler, no name) so those spans
     * stay valid; its pid simply stops receiving. */
    p->fn = NULL;
    p->name[0] = 0;
    return 0;
}

int node_is_alive(const struct node *n, struct term pid)
{
    const struct proc *p = proc_by_pid(n, pid);
    return p && p->fn;
}

int node_make_pid(struct node *n, struct buf *out)
{
    return enc_pid(out, n->name, n->next_pid++, 0, n->creation);
}

int node_whereis(const struct node *n, const char *name, struct term *pid)
{
    struct proc *p = proc_by_name(n, name);
    if (!p)
        return -ENOENT;
    pid->p = p->pid.data;
    pid->len = (uint32_t)p->pid.len;
    return 0;
}

int node_make_ref(struct node *n, struct buf *out)
{
    /* 82-bit counter spread over three words, as the BEAM does. */
    if (++n->ref_ids[0] == 0 && ++n->ref_ids[1] == 0)
        n->ref_ids[2]++;
    return enc_ref(out, n->name, n->creation, n->ref_ids);
}

/* ---- sending ---- */

static int node_frame(struct conn *c, int (*ctl)(struct buf *, void *), void *arg,
                      struct term msg, const struct term *tag, const struct term *reply)
{
    struct buf *out = conn_out(c);
    size_t mark, keep = out->len;
    int rc = ctrl_frame_begin(out, &mark);
    if (!rc)
        rc = ctl(out, arg);
    if (!rc && (msg.p || tag))
        rc = ctrl_payload_begin(out);
    if (!rc && tag) {
        rc = enc_tuple(out, 2);
        if (!rc)
            rc = enc_raw(out, *tag);
        if (!rc)
            rc = enc_raw(out, *reply);
    } else if (!rc && msg.p) {
        rc = enc_raw(out, msg);
    }
    if (rc) {
        out->len = keep;
        return rc;
    }
    ctrl_frame_end(out, mark);
    conn_mark_dirty(c);
    return 0;
}

struct send_args {
    struct term a, b;
    const char *name;
};

static int ctl_send(struct buf *out, void *arg)
{
    return ctrl_enc_send(out, ((struct send_args *)arg)->a);
}

static int ctl_reg_send(struct buf *out, void *arg)
{
    struct send_args *s = arg;
    return ctrl_enc_reg_send(out, s->a, s->name);
}

static int ctl_alias_send(struct buf *out, void *arg)
{
    struct send_args *s = arg;
    return ctrl_enc_alias_send(out, s->a, s->b);
}

int node_send(struct node *n, struct conn *c, struct term to_pid, struct term msg)
{
    (void)n;
    struct send_args a = {.a = to_pid};
    return node_frame(c, ctl_send, &a, msg, NULL, NULL);
}

int node_reg_send(struct node *n, struct conn *c, struct term from_pid, const char *to_name,
                  struct term msg)
{
    (void)n;
    struct send_args a = {.a = from_pid, .name = to_name};
    return node_frame(c, ctl_reg_send, &a, msg, NULL, NULL);
}

int node_reply(struct node *n, struct conn *c, struct term from_pid, struct term caller,
               struct term tag, struct term reply)
{
    (void)n;
    struct term alias;
    struct term none = {NULL, 0};
    if ((c->flags & DF_ALIAS) && gen_tag_alias(tag, &alias)) {
        struct send_args a = {.a = from_pid, .b = alias};
        return node_frame(c, ctl_alias_send, &a, none, &tag, &reply);
    }
    struct send_args a = {.a = caller};
    return node_frame(c, ctl_send, &a, none, &tag, &reply);
}

struct exit_reason_args {
    struct term from, to, ref, reason;
};

static int ctl_exit_reason(struct buf *out, void *arg)
{
    struct exit_reason_args *a = arg;
    int rc = enc_tuple(out, 5);
    if (!rc)
        rc = enc_long(out, CTRL_MONITOR_P_EXIT);
    if (!rc)
        rc = enc_raw(out, a->from);
    if (!rc)
        rc = enc_raw(out, a->to);
    if (!rc)
        rc = enc_raw(out, a->ref);
    return rc ? rc : enc_raw(out, a->reason);
}

int node_send_exit_reason(struct conn *c, struct term from, struct term to, struct term ref,
                          struct term reason)
{
    struct exit_reason_args a = {from, to, ref, reason};
    return node_frame(c, ctl_exit_reason, &a, (struct term){NULL, 0}, NULL, NULL);
}

int node_send_ctrl(struct conn *c, int (*fn)(struct buf *out, void *arg), void *arg)
{
    return node_frame(c, fn, arg, (struct term){NULL, 0}, NULL, NULL);
}

struct conn *node_conn_for(struct node *n, struct term pid)
{
    char nd[CTRL_NAME_MAX];
    if (ctrl_term_node(pid, nd, sizeof nd))
        return NULL;
    if (strcmp(nd, n->name) == 0)
        return conn_loopback(n->conns);
    struct conn *c = conn_find(n->conns, nd);
    return c && c->state == CONN_UP ? c : NULL;
}

int node_allowed(const struct node *n, const char *peer)
{
    if (!n->cfg.allow)
        return 1;
    for (size_t i = 0; i < n->cfg.nallow; i++)
        if (strcmp(n->cfg.allow[i], peer) == 0)
            return 1;
    return 0;
}

struct conn *node_connect(struct node *n, const char *peer)
{
    if (strcmp(peer, n->name) == 0)
        return conn_loopback(n->conns);
    if (!node_allowed(n, peer)) {
        /* Replication and the coordinator retry: one line per second. */
        uint32_t dropped;
        if (conn_ratelim_pass(&n->dial_rl, loop_now(n->loop), 1, &dropped))
            log_warn("not connecting to %s: not on the --allow list%s", peer,
                     dropped ? " (earlier such attempts not logged)" : "");
        return NULL;
    }
    struct conn *c = conn_find(n->conns, peer);
    if (c)
        return c;
    int err;
    c = conn_connect(n->conns, peer, &err);
    if (!c)
        log_debug("cannot start a connection to %s: %s", peer, strerror(-err));
    return c;
}

/* ---- control signals ---- */

struct mon_exit_args {
    const struct ctrl *m;
    const char *reason;
};

static int ctl_monitor_noproc(struct buf *out, void *arg)
{
    const struct ctrl *m = arg;
    return ctrl_enc_monitor_exit(out, m->to, m->to_is_name ? m->to_name : NULL, m->from, m->ref,
                                 "noproc");
}

static int ctl_exit_noproc(struct buf *out, void *arg)
{
    const struct ctrl *m = arg;
    return ctrl_enc_exit(out, m->to, m->from, "noproc");
}

static int ctl_unlink_ack(struct buf *out, void *arg)
{
    const struct ctrl *m = arg;
    return ctrl_enc_unlink_id_ack(out, m->id, m->to, m->from);
}

/* The live local process a message or signal is for, or NULL. */
static struct proc *node_target(struct node *n, const struct ctrl *m)
{
    struct proc *p = m->to_is_name ? proc_by_name(n, m->to_name) : proc_by_pid(n, m->to);
    return p && p->fn ? p : NULL;
}

/* A payload ctrl_decode_head left unchecked: 1 if it is one valid term. */
static int payload_ok(struct conn *c, const struct ctrl *m)
{
    const char *why;
    if (ctrl_payload_valid(m, &why) == 0)
        return 1;
    conn_warn(c, "malformed frame from %s (%u payload bytes) ignored: %s", c->peer,
              m->payload.len, why);
    return 0;
}

void node_deliver_local(struct node *n, struct conn *c, const struct ctrl *m)
{
    struct proc *p = node_target(n, m);
    if (!p || !p->fn)
        log_debug("message from %s to unknown %s dropped", c->peer,
                  m->to_is_name ? m->to_name : "pid");
    else if (p->raw || payload_ok(c, m))
        p->fn(p->ud, c, m);
}

static uint64_t sender_hash(const struct term *t)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < t->len; i++)
        h = (h ^ t->p[i]) * 1099511628211ull;
    return h;
}

static void note_batch(struct node *n, struct conn *c, const struct ctrl *m)
{
    /* A SEND carries no sender: each such message counts as a caller. */
    uint64_t h = m->from.p && m->from.len ? sender_hash(&m->from) : 0;
    if (!h || !c->batch || h != c->batch_last_sender)
        c->batch_senders++;
    c->batch_last_sender = h;
    loop_note_work(n->loop, ++c->batch, c->batch_senders);
}

static void node_on_frame(void *ud, struct conn *c, const uint8_t *body, size_t len)
{
    struct node *n = ud;
    struct ctrl m;
    struct proc *p;
    const char *why;
    /* The payload is checked on delivery, unless its receiver validates
     * it while parsing (node_spawn_raw): one walk over it, not two. */
    int rc = ctrl_decode_head(body, len, &m, &why);
    if (!rc && m.op != CTRL_REG_SEND && m.op != CTRL_SEND)
        rc = ctrl_check_payload(&m, &why);
    if (rc) {
        conn_warn(c, "%s from %s (%zu bytes) ignored: %s", rc == -ENOTSUP ? "control op" :
                  "malformed frame", c->peer, len, why);
        return;
    }
    switch (m.op) {
    case CTRL_REG_SEND:
    case CTRL_SEND:
        /* The coalescing signal counts messages per connection, not
         * frames: one call also brings a MONITOR_P and the previous
         * call's DEMONITOR_P, three frames from a lone caller. And it
         * counts callers: runs of messages from one sender count once, so
         * one process pipelining many calls (a C client) is not taken for
         * many callers behind a node. */
        note_batch(n, c, &m);
        node_deliver_local(n, c, &m);
        break;
    case CTRL_MONITOR_P:
        if (!(p = node_target(n, &m)))
            node_send_ctrl(c, ctl_monitor_noproc, &m);
        else if (p->track && !m.to_is_name)
            pmon_add(p, c->peer, &m);
        break;
    case CTRL_LINK:
        if (!node_target(n, &m))
            node_send_ctrl(c, ctl_exit_noproc, &m);
        break;
    case CTRL_UNLINK_ID:
        node_send_ctrl(c, ctl_unlink_ack, &m);
        break;
    case CTRL_SPAWN_REQUEST:
        if (n->spawn_fn)
            n->spawn_fn(n->spawn_ud, c, &m);
        break;
    case CTRL_DEMONITOR_P:
        /* A caller's monitor ended (its call returned, timed out, or the
         * caller exited): whoever holds work for it may drop it; a
         * tracked process forgets the monitor. */
        if (!(p = node_target(n, &m)))
            break;
        if (p->nmons)
            pmon_drop(p, m.ref);
        if (n->demon_fn)
            n->demon_fn(n->demon_ud, c, &m);
        break;
    case CTRL_MONITOR_P_EXIT:
    case CTRL_SPAWN_REPLY:
        /* A monitor one of our processes set (e.g. on a remote locker)
         * fired, or a spawn it requested was answered: it gets it. */
        if ((p = proc_by_pid(n, m.to)) && p->fn)
            p->fn(p->ud, c, &m);
        break;
    default:
        /* UNLINK, EXIT, EXIT2, GROUP_LEADER, ...: lockerd's processes
         * do not link, nothing to undo. */
        break;
    }
}

/* ---- connection events ---- */

static void node_notify(struct node *n, struct conn *c, int up)
{
    for (size_t i = 0; i < n->nsubs; i++)
        n->subs[i].fn(n->subs[i].ud, c, up);
}

static struct dial_fail *fail_slot(const struct node *n, const char *peer)
{
    for (unsigned i = 0; i < NODE_FAILS; i++)
        if (n->fails[i].peer[0] && strcmp(n->fails[i].peer, peer) == 0)
            return (struct dial_fail *)&n->fails[i];
    return NULL;
}

int node_last_failure(const struct node *n, const char *peer, char *why, size_t len)
{
    const struct dial_fail *f = peer ? fail_slot(n, peer) : NULL;
    if (!f)
        return -ENOENT;
    snprintf(why, len, "%s", f->why);
    return 0;
}

/* A dial that never came up (flags are set when it does). */
static void note_dial_failure(struct node *n, struct conn *c, const char *why)
{
    if (!c->initiator || c->flags || !c->peer[0])
        return;
    struct dial_fail *f = fail_slot(n, c->peer);
    if (!f) {
        f = &n->fails[n->nfails++ % NODE_FAILS];
        snprintf(f->peer, sizeof f->peer, "%s", c->peer);
    }
    snprintf(f->why, sizeof f->why, "%s", why ? why : "connection failed");
}

static void node_on_up(void *ud, struct conn *c)
{
    struct node *n = ud;
    struct dial_fail *f = fail_slot(n, c->peer);
    if (f)
        f->peer[0] = 0;
    /* A restarted peer reconnecting replaces the stale connection. */
    for (struct conn *o = conn_first(n->conns); o; o = o->next)
        if (o != c && strcmp(o->peer, c->peer) == 0) {
            conn_close(o, "replaced by a new connection from the same node");
            break;
        }
    node_notify(n, c, 1);
}

static void node_on_down(void *ud, struct conn *c, const char *why)
{
    struct node *n = ud;
    note_dial_failure(n, c, why);
    for (size_t i = 0; i < n->nprocs && c->peer[0]; i++)
        if (n->procs[i].nmons)
            pmon_forget(&n->procs[i], c->peer);
    node_notify(n, c, 0);
}

/* Status for an incoming handshake. Ourselves and nodes off the allowlist
 * get not_allowed. Simultaneous connect (both sides dialled at once): the
 * node whose name sorts higher keeps its outgoing attempt, as net_kernel
 * decides it. */
static enum hs_status node_decide(void *ud, struct conn *c, const char *peer, uint64_t flags)
{
    (void)flags;
    struct node *n = ud;
    if (strcmp(peer, n->name) == 0)
        return HS_NOT_ALLOWED;
    if (!node_allowed(n, peer)) {
        /* The name is the peer's word, before any cookie check: anyone
         * can provoke this line, so it is rate-limited. */
        uint32_t dropped;
        if (conn_ratelim_pass(&n->deny_rl, loop_now(n->loop), 10, &dropped))
            log_warn("refusing connection from %s: not on the --allow list (%u such "
                     "refusals not logged since the last line)", peer, dropped);
        return HS_NOT_ALLOWED;
    }
    for (struct conn *o = conn_first(n->conns); o; o = o->next) {
        if (o == c || !o->initiator || o->state == CONN_UP || strcmp(o->peer, peer) != 0)
            continue;
        if (strcmp(n->name, peer) > 0)
            return HS_NOK;
        conn_close(o, "simultaneous connect: keeping the peer's connection");
        return HS_OK_SIMULTANEOUS;
    }
    return HS_OK;
}

/* ---- epmd registration ---- */

static void node_on_epmd(struct loop *l, struct loop_io *io, uint32_t events)
{
    (void)events;
    struct node *n = io->ud;
    char tmp[64];
    ssize_t r = recv(n->epmd_fd, tmp, sizeof tmp, 0);
    if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    log_error("epmd closed the registration connection: node %s is no longer published",
              n->name);
    loop_io_del(l, io);
    close(n->epmd_fd);
    n->epmd_fd = -1;
}

/* Blocking with a deadline: runs once at start-up, before the loop. */
static int epmd_register(struct node *n, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(EPMD_PORT)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        snprintf(err, errlen, "cannot reach epmd on 127.0.0.1:%d: %s (is epmd running?)",
                 EPMD_PORT, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -ECONNREFUSED;
    }
    char alive[HS_NAME_MAX + 1];
    snprintf(alive, sizeof alive, "%s", n->name);
    *strchr(alive, '@') = 0;
    struct buf req;
    buf_init(&req);
    int rc = epmd_alive2_req(&req, alive, n->port);
    if (!rc && send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len)
        rc = -EIO;
    buf_free(&req);
    uint8_t resp[8];
    size_t got = 0;
    int64_t deadline = clock_now_ms() + 5000;
    while (!rc) {
        rc = epmd_alive2_resp(resp, got, &n->creation);
        if (rc > 0) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - clock_now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t r = recv(fd, resp + got, sizeof resp - got, 0);
        if (r <= 0) {
            rc = -EIO;
            break;
        }
        got += (size_t)r;
    }
    if (rc) {
        snprintf(err, errlen, "epmd registration of %s failed: %s", alive,
                 rc == -EADDRINUSE ? "the name is already in use" : strerror(-rc));
        close(fd);
        return rc;
    }
    n->epmd_fd = fd;
    return loop_io_add(n->loop, &n->epmd_io, fd, 0x001u, node_on_epmd, n);
}

/* ---- lifecycle ---- */

static void node_periodic(struct loop *l, struct loop_timer *t)
{
    struct node *n = t->ud;
    conn_set_periodic(n->conns, loop_now(l));
    int64_t every = n->cfg.net_ticktime_s * 1000LL / 8;
    if (every > 1000)
        every = 1000;
    if (every < 50)
        every = 50;
    loop_timer_arm(l, t, loop_now(l) + every);
}

static int valid_node_name(const char *s)
{
    const char *at = strchr(s, '@');
    size_t len = strlen(s);
    return at && at != s && at[1] && !strchr(at + 1, '@') && len <= HS_NAME_MAX;
}

struct node *node_new(struct loop *l, const struct node_cfg *cfg, char *err, size_t errlen)
{
    if (!valid_node_name(cfg->name)) {
        snprintf(err, errlen, "bad node name '%s' (want alive@host)", cfg->name);
        return NULL;
    }
    if (strlen(cfg->cookie) >= 1024 || !cfg->cookie[0]) {
        snprintf(err, errlen, "the cookie must be 1 to 1023 bytes");
        return NULL;
    }
    struct node *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->loop = l;
    n->cfg = *cfg;
    n->epmd_fd = -1;
    n->next_pid = 1;
    snprintf(n->name, sizeof n->name, "%s", cfg->name);
    snprintf(n->cookie, sizeof n->cookie, "%s", cfg->cookie);
    n->cfg.name = n->name;
    n->cfg.cookie = n->cookie;
    buf_init(&n->scratch);
    loop_timer_init(&n->periodic, node_periodic, n);
    return n;
}

int node_start(struct node *n, char *err, size_t errlen)
{
    int64_t tick = n->cfg.net_ticktime_s * 1000LL;
    struct conn_cfg cc = {
        .my_name = n->name,
        .cookie = n->cookie,
        .flags = DF_LOCKERD,
        .required_flags = DF_MANDATORY,
        .max_frame = n->cfg.max_frame,
        .max_out = n->cfg.max_out,
        .max_conns = n->cfg.max_conns,
        .max_handshakes = n->cfg.max_handshakes,
        .max_hs_per_source = n->cfg.max_hs_per_source,
        .max_out_total = n->cfg.max_out_total,
        .tick_ms = tick / 4,
        .dead_ms = tick,
        .handshake_ms = n->cfg.handshake_ms,
    };
    if (n->cfg.tls && n->cfg.tls->enabled) {
        int rc = tls_ctx_new(n->cfg.tls, &n->tls, err, errlen);
        if (rc)
            return rc;
        cc.tls = n->tls;
    }
    static const struct conn_ops ops = {
        .on_up = node_on_up,
        .on_frame = node_on_frame,
        .on_down = node_on_down,
        .decide = node_decide,
    };
    /* The creation comes from epmd, and epmd needs the port: listen first,
     * register, then build the connection set with the creation. */
    struct conn_set *conns = conn_set_new(n->loop, &cc, &ops, n);
    if (!conns) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    n->conns = conns;
    int rc = conn_set_listen(conns, n->cfg.listen_addr, n->cfg.port, &n->port, err, errlen);
    if (rc)
        return rc;
    rc = epmd_register(n, err, errlen);
    if (rc)
        return rc;
    conn_set_creation(conns, n->creation);
    /* Processes spawned before registration got creation 0; the creation
     * is the fixed last word of NEW_PID_EXT, so patch it in place (spans
     * of these pids handed out earlier stay valid and become right). */
    for (size_t i = 0; i < n->nprocs; i++)
        put_u32(n->procs[i].pid.data + n->procs[i].pid.len - 4, n->creation);
    return loop_timer_arm(n->loop, &n->periodic, loop_now(n->loop) + 200);
}

void node_free(struct node *n)
{
    if (!n)
        return;
    conn_set_free(n->conns);
    tls_ctx_free(n->tls); /* after the sessions that use it */
    if (n->epmd_fd >= 0) {
        loop_io_del(n->loop, &n->epmd_io);
        close(n->epmd_fd); /* closing unregisters the name */
    }
    loop_timer_stop(n->loop, &n->periodic);
    for (size_t i = 0; i < n->nprocs; i++) {
        buf_free(&n->procs[i].pid);
        pmon_forget(&n->procs[i], NULL);
    }
    free(n->procs);
    free(n->subs);
    buf_free(&n->scratch);
    free(n);
}

const char *node_name(const struct node *n) { return n->name; }
uint32_t node_creation(const struct node *n) { return n->creation; }
struct loop *node_loop(const struct node *n) { return n->loop; }
struct conn_set *node_conns(const struct node *n) { return n->conns; }
uint16_t node_port(const struct node *n) { return n->port; }

int node_subscribe(struct node *n, node_conn_fn fn, void *ud)
{
    struct sub *s = realloc(n->subs, (n->nsubs + 1) * sizeof *s);
    if (!s)
        return -ENOMEM;
    n->subs = s;
    n->subs[n->nsubs].fn = fn;
    n->subs[n->nsubs].ud = ud;
    n->nsubs++;
    return 0;
}

void node_set_spawn_handler(struct node *n, node_msg_fn fn, void *ud)
{
    n->spawn_fn = fn;
    n->spawn_ud = ud;
}

void node_set_demonitor_handler(struct node *n, node_msg_fn fn, void *ud)
{
    n->demon_fn = fn;
    n->demon_ud = ud;
}

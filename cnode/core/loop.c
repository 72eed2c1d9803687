/*
 * Event loop; see loop.h for the iteration model.
 *
 * Timers live in a binary min-heap of pointers (few timers: ticks, pushes,
 * store deadlines), each timer remembering its heap index so re-arming is
 * O(log n). Deferred frees are a growable array drained after hooks.
 *
 * Coalescing (loop_set_coalesce): under many independent callers each
 * wakeup finds one or two messages, and the sleep/wake pair per message
 * (plus the sender's cost of waking us) dominates both lockerd's and its
 * peers' CPU. So after an iteration that did work, a loop in coalescing
 * mode sleeps a short while and then polls without blocking: what arrived
 * meanwhile is read and answered in one batch, one write per peer. That
 * only pays when messages keep arriving independently of our answers; a
 * lone request-reply caller would just wait longer. So the mode is
 * adaptive, on a signal a lone caller cannot give: the largest number of
 * callers one connection brought in one read (loop_note_work; the I/O
 * layer counts runs of messages by sender). A caller that waits for each
 * reply sends one message at a time however many masters it talks to;
 * many callers behind one peer send many; one caller that pipelines (a C
 * client with many calls in flight) sends many messages but counts once,
 * and gains nothing from a sleep: it sends its next calls as soon as it
 * has our replies. The mode turns on when a wakeup finds >= 3 callers and
 * off after 4 sleeps in a row that gathered fewer than 2, then stays off
 * for 256 iterations. While it is on, an iteration that found a large
 * batch (>= 32 messages from one connection) is not followed by a sleep:
 * its wakeup is already paid for many times over, and a sleep would only
 * hold back the senders' whole window.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hist.h"

struct deferred {
    void (*fn)(void *);
    void *p;
};

struct hook {
    loop_hook_fn fn;
    void *ud;
};

struct loop {
    int epfd;
    int stop;
    int64_t now;
    struct loop_timer **heap;
    size_t nheap, capheap;
    struct hook *hooks;
    size_t nhooks;
    struct deferred *defer;
    size_t ndefer, capdefer;
    int more_work;
    struct hist iter;    /* busy time per iteration, us (metrics) */
    struct {
        long us;         /* 0: never */
        int on;          /* adaptive state */
        int bad;         /* unproductive sleeps in a row */
        int cooldown;    /* iterations before it may turn on again */
        int sleep_next;  /* sleep before the next poll */
        size_t work;     /* largest batch noted this iteration, messages */
        size_t callers;  /* largest batch noted this iteration, callers */
    } co;
};

enum { CO_ON_BATCH = 3, CO_GOOD_BATCH = 2, CO_MAX_BAD = 4, CO_COOLDOWN = 256, CO_BIG_BATCH = 32 };

void loop_set_coalesce(struct loop *l, long us)
{
    l->co.us = us > 0 ? us : 0;
    if (!l->co.us)
        l->co.on = l->co.sleep_next = 0;
}
long loop_get_coalesce(const struct loop *l) { return l->co.us; }
void loop_note_work(struct loop *l, size_t msgs, size_t callers)
{
    if (msgs > l->co.work)
        l->co.work = msgs;
    if (callers > l->co.callers)
        l->co.callers = callers;
}
int loop_coalescing(const struct loop *l) { return l->co.on; }

/* End of an iteration: update the adaptive state; slept says whether this
 * iteration began with a coalescing sleep. */
static void co_update(struct loop *l, int slept)
{
    size_t work = l->co.work, callers = l->co.callers;
    l->co.work = l->co.callers = 0;
    if (!l->co.us)
        return;
    if (slept) {
        l->co.bad = callers >= CO_GOOD_BATCH ? 0 : l->co.bad + 1;
        if (l->co.bad >= CO_MAX_BAD) {
            l->co.on = 0;
            l->co.bad = 0;
            l->co.cooldown = CO_COOLDOWN;
        }
    } else if (!l->co.on) {
        if (l->co.cooldown > 0)
            l->co.cooldown--;
        else if (callers >= CO_ON_BATCH)
            l->co.on = 1;
    }
    l->co.sleep_next = l->co.on && work > 0 && work < CO_BIG_BATCH;
}

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        goto fail;
    l->capdefer = 256;
    l->defer = calloc(l->capdefer, sizeof *l->defer);
    if (!l->defer)
        goto fail;
    l->now = clock_now_ms();
    hist_init(&l->iter, hist_le_iter_us, hist_le_iter_n);
    return l;
fail:
    if (l->epfd >= 0)
        close(l->epfd);
    free(l);
    return NULL;
}

static void loop_run_deferred(struct loop *l)
{
    /* A deferred free may defer more; drain until empty. */
    while (l->ndefer) {
        struct deferred d = l->defer[--l->ndefer];
        d.fn(d.p);
    }
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    loop_run_deferred(l);
    close(l->epfd);
    free(l->heap);
    free(l->hooks);
    free(l->defer);
    free(l);
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn,
                void *ud)
{
    io->fd = fd;
    io->events = events;
    io->fn = fn;
    io->ud = ud;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    io->active = 1;
    return 0;
}

int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (!io->active || io->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
    if (!io->active)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->active = 0;
}

/* ---- timer heap ---- */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct loop_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_idx = a;
    l->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->due <= l->heap[i]->due)
            break;
        heap_swap(l, p, i);
        i = p;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nheap && l->heap[c]->due < l->heap[m]->due)
            m = c;
        if (c + 1 < l->nheap && l->heap[c + 1]->due < l->heap[m]->due)
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *ud)
{
    t->due = CLOCK_NEVER;
    t->fn = fn;
    t->ud = ud;
    t->heap_idx = SIZE_MAX;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    size_t i = t->heap_idx;
    if (i == SIZE_MAX)
        return;
    t->heap_idx = SIZE_MAX;
    l->nheap--;
    if (i == l->nheap)
        return;
    l->heap[i] = l->heap[l->nheap];
    l->heap[i]->heap_idx = i;
    heap_up(l, i);
    heap_down(l, l->heap[i]->heap_idx);
}

int loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t due)
{
    if (t->heap_idx != SIZE_MAX) {
        int64_t old = t->due;
        t->due = due;
        if (due < old)
            heap_up(l, t->heap_idx);
        else
            heap_down(l, t->heap_idx);
        return 0;
    }
    if (l->nheap == l->capheap) {
        size_t cap = l->capheap ? l->capheap * 2 : 16;
        struct loop_timer **h = realloc(l->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        l->heap = h;
        l->capheap = cap;
    }
    t->due = due;
    t->heap_idx = l->nheap;
    l->heap[l->nheap++] = t;
    heap_up(l, t->heap_idx);
    return 0;
}

int loop_hook_add(struct loop *l, loop_hook_fn fn, void *ud)
{
    struct hook *h = realloc(l->hooks, (l->nhooks + 1) * sizeof *h);
    if (!h)
        return -ENOMEM;
    l->hooks = h;
    l->hooks[l->nhooks].fn = fn;
    l->hooks[l->nhooks].ud = ud;
    l->nhooks++;
    return 0;
}

void loop_defer_free(struct loop *l, void (*fn)(void *), void *p)
{
    if (l->ndefer == l->capdefer) {
        struct deferred *d = realloc(l->defer, l->capdefer * 2 * sizeof *d);
        if (!d) {
            fn(p);
            return;
        }
        l->defer = d;
        l->capdefer *= 2;
    }
    l->defer[l->ndefer].fn = fn;
    l->defer[l->ndefer].p = p;
    l->ndefer++;
}

int64_t loop_now(const struct loop *l) { return l->now; }
const struct hist *loop_iter_hist(const struct loop *l) { return &l->iter; }
void loop_stop(struct loop *l) { l->stop = 1; }

static int loop_wait_ms(const struct loop *l, int max_wait_ms)
{
    if (l->more_work)
        return 0;
    int64_t wait = max_wait_ms < 0 ? 60000 : max_wait_ms;
    if (l->nheap) {
        int64_t d = l->heap[0]->due - l->now;
        if (d < wait)
            wait = d < 0 ? 0 : d;
    }
    return (int)wait;
}

static void loop_run_timers(struct loop *l)
{
    /* Bound the pass so a timer that re-arms itself at "now" cannot spin. */
    size_t budget = l->nheap;
    while (l->nheap && l->heap[0]->due <= l->now && budget--) {
        struct loop_timer *t = l->heap[0];
        loop_timer_stop(l, t);
        t->fn(l, t);
    }
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
    enum { MAX_EVENTS = 256 };
    struct epoll_event evs[MAX_EVENTS];
    int slept = l->co.sleep_next;
    if (slept) {
        struct timespec ts = {0, l->co.us * 1000};
        nanosleep(&ts, NULL);
    }
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, slept ? 0 : loop_wait_ms(l, max_wait_ms));
    if (n < 0 && errno != EINTR)
        return -errno;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    l->now = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
    for (int i = 0; i < n; i++) {
        struct loop_io *io = evs[i].data.ptr;
        /* A watcher removed earlier in this batch is inactive but still
         * allocated (frees are deferred), so this check is safe. */
        if (io->active)
            io->fn(l, io, evs[i].events);
    }
    loop_run_timers(l);
    l->more_work = 0;
    for (size_t i = 0; i < l->nhooks; i++)
        l->more_work |= l->hooks[i].fn(l, l->hooks[i].ud);
    loop_run_deferred(l);
    co_update(l, slept);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    hist_observe(&l->iter, (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 +
                               (t1.tv_nsec - t0.tv_nsec) / 1000);
    return 0;
}

int loop_run(struct loop *l)
{
    while (!l->stop) {
        int rc = loop_run_once(l, -1);
        if (rc)
            return rc;
    }
    return 0;
}

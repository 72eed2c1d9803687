/*
 * Event loop: epoll for sockets, a small min-heap of timers, and per-
 * iteration hooks.
 *
 * Model. Each iteration: wait for I/O (no longer than the earliest timer,
 * not at all if a hook reported pending work), dispatch I/O callbacks, run
 * due timers, run the hooks (output flushing, bounded expiry work), then
 * run deferred frees. Objects are never freed inside their own callback:
 * owners call loop_defer_free(), which runs after every callback of the
 * iteration, so a stale epoll event for a closed fd never reaches freed
 * memory (events of closed watchers are skipped by a generation check).
 *
 * The loop caches "now" (monotonic ms) once per iteration: loop_now().
 * Single-threaded; not thread-safe.
 */
#ifndef LOCKERD_LOOP_H
#define LOCKERD_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_io;
struct loop_timer;

typedef void (*loop_io_fn)(struct loop *l, struct loop_io *io, uint32_t events);
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t);
/* Returns 1 if it left work undone (the loop then polls without sleeping). */
typedef int (*loop_hook_fn)(struct loop *l, void *ud);

/* Embedded in its owner; the owner keeps it alive until loop_io_del. */
struct loop_io {
    int fd;
    uint32_t events;  /* EPOLLIN / EPOLLOUT ... */
    loop_io_fn fn;
    void *ud;
    int active;
};

struct loop_timer {
    int64_t due;
    loop_timer_fn fn;
    void *ud;
    size_t heap_idx; /* SIZE_MAX when not armed */
};

#define LOOP_IN 0x001u   /* EPOLLIN */
#define LOOP_OUT 0x004u  /* EPOLLOUT */
#define LOOP_ERR 0x008u  /* EPOLLERR */
#define LOOP_HUP 0x010u  /* EPOLLHUP */

struct loop *loop_new(void);
void loop_free(struct loop *l); /* NULL ok; runs pending deferred frees */

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn,
                void *ud);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
void loop_io_del(struct loop *l, struct loop_io *io); /* does not close fd */

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *ud);
int loop_timer_arm(struct loop *l, struct loop_timer *t, int64_t due);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

int loop_hook_add(struct loop *l, loop_hook_fn fn, void *ud);

/* Run fn(p) after the current iteration's callbacks. -ENOMEM is never
 * returned: if the queue cannot grow, fn(p) runs at once (safe only
 * outside callbacks, so the queue is preallocated generously). */
void loop_defer_free(struct loop *l, void (*fn)(void *), void *p);

int64_t loop_now(const struct loop *l);
/* Time each iteration spent working (after its wait), in microseconds. */
struct hist;
const struct hist *loop_iter_hist(const struct loop *l);

/* Adaptive coalescing of busy periods (see loop.c): after an iteration
 * that did work (but found no large batch: see loop.c), sleep `us`
 * microseconds before polling again, while that keeps gathering batches.
 * 0 disables it. The I/O layer reports the batches it handles with
 * loop_note_work: how many messages one source's current read has brought
 * so far, and from how many callers (a run of messages from one sender
 * counts once); the loop keeps the largest of the iteration. */
void loop_set_coalesce(struct loop *l, long us);
long loop_get_coalesce(const struct loop *l);
void loop_note_work(struct loop *l, size_t msgs, size_t callers);
int loop_coalescing(const struct loop *l);
int loop_run(struct loop *l);   /* until loop_stop; 0 or -errno */
void loop_stop(struct loop *l); /* safe from callbacks and signal-driven fds */
/* One iteration with a maximum wait (tests). */
int loop_run_once(struct loop *l, int max_wait_ms);

#endif

/*
 * Node-local lock (docs/protocol.md section 7): advisory, owner-less, named
 * locks inside one OS process, used to keep two threads from doing the
 * same expensive thing at once.
 *
 * Model. A registry (struct lkc_nlocks) maps names to a state: OK
 * (unlocked) or LOCKED. "Owner-less" means any thread may unlock what any
 * other thread locked, and lkc_nlock_lock never waits: it marks the name
 * locked and returns, even if it already was. The lock therefore gives no
 * mutual exclusion by itself; it is a flag that other threads poll with
 * lkc_nlock_check (or lkc_nlock_check_with_retry) before starting the work
 * themselves. A process may hold several registries; there is no global
 * state.
 *
 * Threads. Every function except lkc_nlocks_free may be called from any
 * thread at any time, concurrently with any other. lkc_nlock_check takes
 * no mutex: it is a lock-free table lookup plus one atomic load, so it is
 * cheap enough for hot paths. lkc_nlock_lock and lkc_nlock_unlock are
 * lock-free too; create and delete serialise on a mutex inside the
 * registry. Unlock has release and check has acquire semantics: what a
 * thread wrote before unlocking is visible to a thread whose check then
 * returns LKC_NLOCK_OK.
 *
 * Names are NUL-terminated byte strings of 0..LKC_NLOCK_NAME_MAX bytes,
 * compared byte for byte and copied on create. Every function taking a
 * name returns -EINVAL for a NULL registry or name and -ENAMETOOLONG for
 * a longer name, before doing anything else.
 *
 * Memory. A name's record and the registry's lookup tables are kept until
 * lkc_nlocks_free, so a registry costs memory in proportion to the number
 * of distinct names ever created in it (deleting a name and creating it
 * again reuses its record). It suits a small, mostly fixed set of names,
 * not an unbounded stream of fresh ones; see nlock.c for the bound.
 */
#ifndef LOCKERD_CLIENT_NLOCK_H
#define LOCKERD_CLIENT_NLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* States reported by lkc_nlock_check. */
#define LKC_NLOCK_OK 0
#define LKC_NLOCK_LOCKED 1

/* Longest name accepted, in bytes, not counting the terminating NUL. */
#define LKC_NLOCK_NAME_MAX 255

struct lkc_nlocks;

/* A new, empty registry, owned by the caller; NULL when out of memory. */
struct lkc_nlocks *lkc_nlocks_new(void);

/* Free the registry and every name in it. No other call on it may be
 * running or start afterwards (join the threads that use it first).
 * NULL ok. */
void lkc_nlocks_free(struct lkc_nlocks *r);

/* Create `name`, unlocked. Creating a name that exists returns 0 and
 * leaves its state as it is (a locked name stays locked), so several
 * threads may all "create" a name on start-up without racing a lock that
 * one of them has already taken. 0 or -ENOMEM (and the name errors). */
int lkc_nlock_create(struct lkc_nlocks *r, const char *name);

/* LKC_NLOCK_OK or LKC_NLOCK_LOCKED, or `dflt` when `name` does not exist
 * (never created, or deleted). Takes no mutex. The name errors are
 * returned as negative errno values, so pick a `dflt` that cannot be
 * mistaken for them (LKC_NLOCK_LOCKED is the usual choice: a name nobody
 * created is not known to be free). */
int lkc_nlock_check(struct lkc_nlocks *r, const char *name, int dflt);

/* Mark `name` locked; does not wait and succeeds if it already is locked.
 * 0, or -ENOENT when the name does not exist (lock never creates). */
int lkc_nlock_lock(struct lkc_nlocks *r, const char *name);

/* Mark `name` unlocked, whoever locked it; succeeds if it was not locked.
 * 0, or -ENOENT when the name does not exist. */
int lkc_nlock_unlock(struct lkc_nlocks *r, const char *name);

/* Remove `name`, locked or not: 1 if it existed, 0 if not. A later create
 * of the same name starts unlocked. */
int lkc_nlock_delete(struct lkc_nlocks *r, const char *name);

/* Lock `name`, run fn(arg), then unlock `name` whatever fn returned, and
 * store fn's return value in *fn_result (when fn_result is not NULL).
 * Returns 0 once fn has run; if the name was deleted while fn ran there is
 * nothing left to unlock and the result is still 0. Returns -ENOENT
 * without running fn when the name does not exist, -EINVAL when fn is
 * NULL. The guarantee covers fn returning, with any value: a longjmp out
 * of fn skips the unlock and is not supported, and neither is a C++
 * exception unwinding through this C frame; C++ callers should catch
 * inside fn and return a code (or pair lock/unlock in an RAII guard of
 * their own). */
int lkc_nlock_with_lock(struct lkc_nlocks *r, const char *name, int (*fn)(void *arg),
                        void *arg, int *fn_result);

/* Check `name` up to max_attempts times (at least once; smaller values
 * count as 1), sleeping interval_ms milliseconds (negative counts as 0)
 * between attempts, until it reports LKC_NLOCK_OK. Then call fn(status,
 * arg) with LKC_NLOCK_OK, or with LKC_NLOCK_LOCKED if every attempt found
 * the name locked, and return what fn returns. A name that does not exist
 * counts as locked (a creation meanwhile ends the wait, since create
 * starts unlocked). There is no sleep after the last attempt. fn is not
 * called when the arguments are invalid: -EINVAL for a NULL fn, and the
 * name errors. The sleeps block the calling thread; this is not for an
 * event-loop thread. */
int lkc_nlock_check_with_retry(struct lkc_nlocks *r, const char *name, int max_attempts,
                               int64_t interval_ms, int (*fn)(int status, void *arg),
                               void *arg);

#ifdef __cplusplus
}
#endif

#endif

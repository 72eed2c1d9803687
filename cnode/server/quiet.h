/*
 * Safe restarts: the quiet period of a master that lost its memory.
 *
 * A master that restarts empty would vote ok for keys it forgot; two such
 * restarts inside one lease and two clients hold the same key. So a
 * restarted master refuses votes on keys it has no record of until every
 * lease it could have granted before has run out.
 *
 * How long that is comes from a small state file that records the longest
 * lease this node ever granted (rounded up to 1000 * 2^k ms, so the file
 * is rewritten a handful of times in its life). It is written and fsynced
 * before the commit that raised it is acknowledged. At start-up:
 *   - no state file yet: first start, no quiet period (the file is created);
 *   - a state file: a restart, quiet for max(longest lease, floor), where
 *     floor is the write-lock lifetime (votes granted before the crash
 *     hold for that long on the other masters);
 *   - an explicit quiet period (>= 0) replaces the computed one at every
 *     start, with or without a state file.
 * A state file that exists but cannot be read is an error: guessing would
 * either stall the node or break the guarantee.
 *
 * Times are the loop's monotonic milliseconds. The file is tiny text:
 *   lockerd-state 1
 *   longest_lease_ms N
 */
#ifndef LOCKERD_QUIET_H
#define LOCKERD_QUIET_H

#include <stddef.h>
#include <stdint.h>

struct quiet;

/* path: state file, NULL for none. quiet_ms: -1 automatic, else fixed.
 * NULL on error with a reason in err. */
struct quiet *quiet_open(const char *path, int64_t quiet_ms, int64_t floor_ms, int64_t now,
                         char *err, size_t errlen);
void quiet_free(struct quiet *q); /* NULL ok */

/* Non-zero while votes on keys without a record must be refused. Logs
 * once when the period is over. */
int quiet_active(struct quiet *q, int64_t now);
int64_t quiet_until(const struct quiet *q); /* 0: none */
/* A new quiet period ending at until (0: none), e.g. after an in-process
 * restart of the server that knows what its previous incarnation held. */
void quiet_set_until(struct quiet *q, int64_t until);

/* A lease of len ms is about to be granted: raise the recorded longest
 * lease first if needed. 0, or -errno when the file could not be written
 * (logged; the lease is still granted, see quiet.c). */
int quiet_note_lease(struct quiet *q, int64_t len_ms);
int64_t quiet_longest(const struct quiet *q);

/* Rounding used for the record (exposed for tests). */
int64_t quiet_round_up(int64_t len_ms);

#endif

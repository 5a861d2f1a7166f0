/*
 * What the brute-force penalty (auth/penalty.h) tells the workers: which
 * client prefixes and which login names are under penalty right now. A worker
 * answers a repeated login from its credential cache without asking the
 * helper; for a listed address or name it must not (the helper has to see
 * those logins, to count them and hold their answers), so it asks here first.
 *
 * fastpop-auth is the only writer. It makes the view a memfd, maps it
 * read-write once, then seals it (F_SEAL_FUTURE_WRITE, no shrink, no grow,
 * no further seals) and fchmods it 0400 before handing the descriptor to a
 * worker that asks (auth/protocol.h, AUTH_MSG_VIEW). So a worker can map it
 * read-only and nothing else: no write(2), no writable mapping, no mprotect
 * to writable, no ftruncate, no reopening /proc/PID/fd/N for writing. A
 * compromised worker cannot unlist an attacker for the other workers.
 *
 * Layout: a header, then a power-of-two table of 16-byte slots, linear
 * probing. A slot is {tag, until}: tag = hash64 of (kind, masked address or
 * name) under a random seed in the header (the seed keeps remote clients from
 * aiming names at one probe chain; workers may know it), until = CLOCK_MONOTONIC
 * milliseconds when the entry stops counting (its score has decayed to zero
 * and any block has ended). Expired slots stay as tombstones until reused or
 * the helper rebuilds the table. A sequence number, odd while the helper
 * writes, lets a reader see a consistent table without a lock a worker could
 * hold (a reader never writes): after a few tries the reader gives up and
 * treats the login as listed. Every failure on the reader's side (no view,
 * damaged header, a table the helper declared overflowing) means "listed":
 * the login goes to the helper, which is always right.
 *
 * A false positive (two keys with one 64-bit tag) only sends a login to the
 * helper. Cost of a lookup: two hashes and a few cache lines.
 */
#ifndef FASTPOP_PENALTY_VIEW_H
#define FASTPOP_PENALTY_VIEW_H

#include <stddef.h>
#include <stdint.h>

enum penalty_view_kind { PENALTY_VIEW_IP = 1, PENALTY_VIEW_USER = 2 };

/* Smallest table, so a tiny penalty table still probes short chains. */
#define PENALTY_VIEW_MIN_SLOTS 64
/* Probes before a reader gives up and says "listed" (the helper keeps chains far shorter). */
#define PENALTY_VIEW_MAX_PROBES 64
/* Reads retried while the helper is writing, before a reader says "listed". */
#define PENALTY_VIEW_READ_TRIES 8

struct penalty_view;

/* --- the helper ----------------------------------------------------------- */

/*
 * A new view for up to entries live keys (the table gets at least twice as
 * many slots), for addresses grouped by the given prefix lengths.
 * -1 with errno (memfd, mmap, ENOMEM).
 */
int penalty_view_create(uint32_t entries, int ipv4_prefix, int ipv6_prefix,
                        struct penalty_view **out);
void penalty_view_free(struct penalty_view *v);

/* The tag of an address's group (-1 if ip is not an address) or of a name. */
int penalty_view_ip_tag(const struct penalty_view *v, const char *ip, uint64_t *tag);
uint64_t penalty_view_user_tag(const struct penalty_view *v, const char *user);

/*
 * List tag until until_ms (<= now_ms: unlist). now_ms is the writer's clock
 * (clock_mono_ms() in the helper): slots expired by then may be reused.
 * Returns 0, or -1 if the table is too full to take it: then the view is
 * marked overflowing (every reader treats every login as listed) until the
 * next rebuild.
 */
int penalty_view_set(struct penalty_view *v, uint64_t tag, int64_t until_ms, int64_t now_ms);

/*
 * Rewrite the table: begin empties it (readers retry meanwhile, then treat
 * logins as listed), the caller sets every live tag again, end publishes it.
 * Also how new prefix lengths are taken (after a reload).
 */
void penalty_view_rebuild_begin(struct penalty_view *v, int ipv4_prefix, int ipv6_prefix);
void penalty_view_rebuild_end(struct penalty_view *v);

/* 1 when the table is half full of slots (live or expired): time to rebuild. */
int penalty_view_needs_rebuild(const struct penalty_view *v);

/* A read-only descriptor for a worker (sealed as above); the caller closes it. */
int penalty_view_reader_fd(const struct penalty_view *v);

/* --- a worker ------------------------------------------------------------- */

/* Map a view received from the helper (takes fd: closed here). -1 if unusable. */
int penalty_view_map(int fd, struct penalty_view **out);

/*
 * 1 if ip's group or one of the names (NULL or "" skipped) is listed at
 * now_ms, or if the view cannot say (v NULL, damaged, being rewritten,
 * overflowing); 0 only when the view positively lists none of them.
 */
int penalty_view_listed(const struct penalty_view *v, const char *ip, const char *user,
                        const char *user2, int64_t now_ms);


#endif

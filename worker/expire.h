/*
 * RFC 2449 EXPIRE, enforced (issue 16 part 4): a message that a session
 * RETRieved more than n days ago is removed at the user's next QUIT, n the
 * user's own value (passwd-file pop3_expire, ldap_expire_attribute) or
 * pop3_expire. EXPIRE 0: what a session retrieves is removed at its own
 * QUIT (RFC 2449: leaving mail on the server is not allowed). NEVER, the
 * default, costs nothing: no record, no write.
 *
 * Only in the UPDATE state, like DELE, and by the same unlink
 * (mailbox_update): a session that ends without QUIT changes nothing, not
 * even the retrieval days, and a crash before the unlinks leaves every
 * message in place. The day a message was first retrieved is kept per
 * host in the policy store (shm/policy_store.h), recorded at that
 * session's QUIT; a message is removed when today (UTC days) is more than
 * n days past it, so it stays at least n whole days. Records of removed
 * messages are dropped after the unlinks, and those of messages another
 * program removed at each QUIT that applies EXPIRE. Counted
 * (fastpop_messages_expired_total) and logged ("expire user=...").
 */
#ifndef FASTPOP_EXPIRE_H
#define FASTPOP_EXPIRE_H

#include <stddef.h>
#include <stdint.h>

#include "worker/conn.h"

/* The EXPIRE value for c's user (days or USER_POLICY_EXPIRE_NEVER). */
uint32_t expire_days(const struct conn *c);

/*
 * Whether a message first retrieved on day (POLICY_STORE_NOT_RETRIEVED:
 * never) is due at a QUIT on today under days (not NEVER): retrieved, and
 * with days > 0 more than days whole days ago. A day after today (the
 * clock stepped back) is not due.
 */
int expire_due(uint32_t day, uint32_t today, uint32_t days);

/* RETR of message i finished (0-based): remembered for QUIT when EXPIRE applies. */
void expire_note_retr(struct conn *c, size_t i);

/* QUIT, before the unlinks: record today's retrievals and mark expired messages deleted. */
unsigned expire_before_update(struct conn *c);

/* QUIT, after the unlinks: drop the records of messages that went. */
void expire_after_update(struct conn *c);

/* The session ends (any way): forget the retrieval marks. */
void expire_release(struct conn *c);

/* The EXPIRE CAPA line for c's state (RFC 2449 section 6.5). */
void expire_capa(struct conn *c);

#endif

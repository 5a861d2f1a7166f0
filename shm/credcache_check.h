/*
 * The credential cache as a file that can be damaged: a check of the whole
 * environment and its removal. The master runs both in a child that became
 * auth_user (the owner of state_dir/authcache), before the helper starts
 * and after a worker or the helper faulted: LMDB trusts its pages, so a
 * file cut short or overwritten with garbage can kill every reader, and
 * would again after each respawn. The cache is only a cache: a damaged
 * one is replaced by an empty one, and logins go to the backend meanwhile.
 */
#ifndef FASTPOP_CREDCACHE_CHECK_H
#define FASTPOP_CREDCACHE_CHECK_H

/*
 * Open both stores of state_dir/authcache (the login list and, in private/,
 * the verifiers) read-only and read every page and record: 0 if they are
 * sound or there are none yet; MDB_CORRUPTED (also for a data file
 * shorter than its pages), MDB_INVALID, MDB_VERSION_MISMATCH... if it is
 * damaged; MDB_INCOMPATIBLE if a record is not one of ours (another
 * program's environment, or a record format this version cannot read);
 * an errno value if it cannot be opened.
 */
int credcache_check(const char *state_dir);

/* Remove both stores' data and lock files (names only). 0 or an errno value. */
int credcache_remove(const char *state_dir);

#endif

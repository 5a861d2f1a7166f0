/*
 * LMDB environment handling shared by the mailbox index and the credential
 * cache (the only two LMDB users). The rules it enforces, from lmdb.h and
 * ../shared/reference/interop.md section 6:
 *
 *  - open an env in the process that uses it, after fork; never inherit one;
 *  - always set the map size (LMDB's default is 1 MiB) and enough reader
 *    slots for every worker plus tools;
 *  - MDB_NOTLS, so an event loop may hold more than one read txn;
 *  - MDB_MAP_FULL: abort, grow the map, retry (lmdbenv_grow);
 *    MDB_MAP_RESIZED from txn begin: adopt the new size (lmdbenv_txn_begin);
 *  - stale readers of dead processes are cleared (mdb_reader_check) by the
 *    unprivileged processes that use the env, never by root: every worker
 *    as it opens the index (so the one replacing a dead worker does), the
 *    helper at each cache sweep.
 *
 * All functions return 0 or an LMDB/errno code (LMDB's own convention: an
 * int that mdb_strerror() explains); outputs come last.
 *
 * Caveat: never keep a read txn open across an epoll wait; never open the
 * same env twice in one process (closing either drops the other's locks).
 */
#ifndef FASTPOP_LMDB_ENV_H
#define FASTPOP_LMDB_ENV_H

#include <lmdb.h>
#include <stddef.h>
#include <sys/types.h>

/* Environments live in subdirectories of state_dir; never on NFS. */
#define LMDBENV_DEFAULT_MAPSIZE ((size_t)1 << 30)
#define LMDBENV_MAX_READERS 512

/*
 * Create dir (mode) if needed and open the environment in it. flags are
 * added to MDB_NOTLS (e.g. MDB_NOSYNC for a cache that is rebuilt anyway).
 */
int lmdbenv_open(const char *dir, mode_t mode, size_t mapsize, unsigned maxdbs,
                 unsigned flags, MDB_env **env);

/*
 * MDB_CORRUPTED unless the data file holds every page its newest meta page
 * names. LMDB maps the file and trusts it: a file cut short (truncated by
 * hand, a host crash with MDB_NOSYNC) opens fine, and the first read of a
 * missing page is a SIGBUS, again in every process that reopens it. Run
 * right after mdb_env_open (lmdbenv_open does).
 */
int lmdbenv_check_size(MDB_env *env);

/* Begin a txn, adopting a map size another process has grown meanwhile. */
int lmdbenv_txn_begin(MDB_env *env, unsigned flags, MDB_txn **txn);

/* After MDB_MAP_FULL (with no txn open in this process): double the map. */
int lmdbenv_grow(MDB_env *env);

#endif

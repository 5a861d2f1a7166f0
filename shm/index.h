/*
 * The mailbox index: an LMDB environment in state_dir/index (local disk,
 * never NFS) that every worker opens after fork. One record per maildir,
 * keyed by a 128-bit hash of its path (LMDB keys stop at 511 bytes); the
 * record holds the path itself, so a hash collision reads as a miss.
 *
 * Record layout (host byte order: the file never leaves the host), one
 * LMDB value per mailbox, read with one mdb_get at login:
 *   head     magic "FPI1", version (3), path length, legacy kind, message
 *            count, total size, string block length, time of the last
 *            tmp/ cleanup, a serial that differs for every record written,
 *            and a stamp per directory (new/, cur/): mtime seconds +
 *            nanoseconds, inode, trust, and for a stamp of fastpop's own
 *            changes the time of the oldest one no listing has confirmed
 *            and the boot it was made in
 *   path     the maildir path, padded to 8 bytes
 *   messages count x 32 bytes in POP3 order: POP3 size, leading timestamp,
 *            offsets of the current file name and of the UIDL in the
 *            string block, unique part length, UIDL length, name length
 *   strings  NUL-terminated file names and UIDLs
 * The head alone answers a warm login (STAT needs only count and size):
 * mbindex_get_head reads it without touching the messages, which a session
 * loads with mbindex_get when a command needs them (shm/index_sync.h).
 * A record of another version reads as absent (MDB_NOTFOUND): an upgrade
 * costs each mailbox one scan, and no warning.
 * A record that fails any bounds check (a garbage value) decodes as
 * EINVAL and is rebuilt by a scan, like a missing one.
 *
 * The index is a cache; the maildir is the truth: deleting the
 * environment, or any record, changes nothing a client sees. So commits
 * do not fsync (MDB_NOSYNC), and a map that fills up is grown.
 *
 * Functions return 0, an LMDB code or an errno value (as shm/lmdb_env.h);
 * outputs come last. mdb_strerror() explains both kinds. Every function
 * on one struct mbindex may be called from two threads (a worker's loop
 * and its loader, worker/offload.h): each holds the handle's lock while
 * it runs, so their txns never overlap and a map resize sees none open.
 */
#ifndef FASTPOP_SHM_INDEX_H
#define FASTPOP_SHM_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "maildir/scan.h"

/* The environment's directory under state_dir. */
#define INDEX_SUBDIR "index"

/* index_recheck's default (etc/fastpop.conf.5): see mbindex_set_recheck. */
enum { INDEX_RECHECK_DEFAULT = 60 * 60 };

/* How far a directory's stamp vouches for the content recorded with it (index_sync.h). */
enum index_trust {
    INDEX_STALE = 0,    /* read the directory again */
    INDEX_VERIFIED = 1, /* listed at least 1 s after its mtime */
    INDEX_OURS = 2,     /* a listing plus fastpop's own changes since (cur/ only) */
};

/* What a directory looked like when its content was last known. */
struct index_dirstamp {
    int64_t  sec;
    int64_t  nsec;
    uint64_t ino;
    uint32_t trust;     /* enum index_trust */
    uint32_t pad;
    int64_t  own_since; /* INDEX_OURS: time() of the oldest own change taken on trust */
    uint64_t own_boot;  /* INDEX_OURS: the boot it was made in (mbindex_boot) */
};

struct index_entry {
    struct index_dirstamp new_dir;
    struct index_dirstamp cur_dir;
    int64_t tmp_cleaned;   /* time() of the last tmp/ cleanup */
    uint32_t legacy;       /* enum legacy_kind the UIDLs came from */
    uint64_t serial;       /* set by a read: which record this was (put makes a new one) */
    struct maildir *md;    /* messages in POP3 order; the caller's to free */
};

/* A record without its messages: what a warm login needs. */
struct index_head {
    struct index_dirstamp new_dir;
    struct index_dirstamp cur_dir;
    int64_t tmp_cleaned;
    uint32_t legacy;
    uint64_t count;        /* messages, and their total POP3 size: STAT */
    uint64_t total_size;
    uint64_t serial;       /* equal serials: the same record, the same messages */
};

struct mbindex;

/*
 * Open (creating if needed) the environment in dir, after fork. mapsize 0
 * means LMDBENV_DEFAULT_MAPSIZE; it grows on MDB_MAP_FULL. Also clears the
 * reader slots of dead processes (a worker killed inside a read txn): the
 * worker that replaces a dead one does it as it starts.
 */
int mbindex_open(const char *dir, size_t mapsize, struct mbindex **out);
void mbindex_close(struct mbindex *ix);

/*
 * Before any worker runs, as the mail user (the master runs it in a child
 * that dropped to that user, in the directory it made for it): open and
 * check the environment (every page of the key tree is read), and start a
 * fresh one if it is unreadable (MDB_INVALID, MDB_VERSION_MISMATCH,
 * MDB_CORRUPTED, a data file shorter than its pages: the index is a
 * cache), another program's (a key that is not one of ours:
 * MDB_INCOMPATIBLE) or not openable by this user (EACCES). *reset is 1 when the old
 * files were removed.
 */
int mbindex_prepare(const char *dir, int *reset);

/* As the mail user: remove the environment's files in dir, unread (its check faulted). */
int mbindex_remove(const char *dir);

/*
 * Read the record of the maildir at path into *e (e->md allocated).
 * MDB_NOTFOUND: none (or one of another version); ESTALE: the key belongs to another path (collision);
 * EINVAL: the value does not decode. All three mean "scan and put".
 */
int mbindex_get(struct mbindex *ix, const char *path, struct index_entry *e);

/*
 * Read only the head of the record of path: O(1) whatever the mailbox
 * holds. Same codes as mbindex_get. The count and size are those the
 * messages add up to only once mbindex_get has checked them; a caller that
 * answers from the head checks when it loads (index_load).
 */
int mbindex_get_head(struct mbindex *ix, const char *path, struct index_head *head);

/*
 * The map never grows past max bytes (the worker's index_max_mb), and one
 * already larger is set back to it, or to the pages in use if more: a put
 * that does not fit then fails with MDB_MAP_FULL, and that mailbox is
 * scanned at each login. 0, or the code of a resize that failed (ix is
 * then broken, as below).
 */
int mbindex_limit_size(struct mbindex *ix, size_t max);

/*
 * Store e for path in one short write txn, growing the map when full (up
 * to the limit above). A map that could not be mapped again at its new
 * size (no address space left) leaves ix broken with that code: LMDB has
 * no map then, and only mbindex_rebuild() may touch the env again.
 * *serial (may be NULL) gets the new record's serial.
 */
int mbindex_put(struct mbindex *ix, const char *path, const struct index_entry *e,
                uint64_t *serial);

/*
 * After a session's own changes to cur/: replace the record of path, if it
 * is still the one with serial *serial, by one with md as its messages and
 * cur_dir as cur/'s stamp; new/'s stamp, the legacy kind and the tmp/
 * cleanup time stay the stored ones, and *serial becomes the new record's.
 * One write txn, so nothing another process wrote meanwhile is
 * overwritten: ESTALE (or MDB_NOTFOUND) then.
 */
int mbindex_replace_cur(struct mbindex *ix, const char *path, uint64_t *serial,
                        const struct index_dirstamp *cur_dir, const struct maildir *md);

/*
 * How long (seconds) a cur/ stamp that rests on fastpop's own changes is
 * trusted before cur/ is listed again (index_sync.h); the setting
 * index_recheck. 0: never trusted (cur/ is listed after every own change).
 */
void mbindex_set_recheck(struct mbindex *ix, int seconds);
int  mbindex_recheck(const struct mbindex *ix);

/*
 * This boot of the machine (a hash of the kernel's boot_id), read at open:
 * a stamp of own changes counts only within the boot that made it, since
 * after a crash the index (not fsynced) may have lost what the maildir
 * kept. 0 when unknown: then no such stamp counts.
 */
uint64_t mbindex_boot(const struct mbindex *ix);

/* Forget path. MDB_NOTFOUND if there was nothing. */
int mbindex_del(struct mbindex *ix, const char *path);

/*
 * 1 once an LMDB call of this process reported the environment itself
 * broken (corrupt pages, a version mismatch, a file cut short): every
 * later call then fails at once with that code and sessions scan, until
 * mbindex_rebuild() (a worker) or the master's next start replaces it.
 */
int mbindex_broken(struct mbindex *ix);

/*
 * As the mail user, in a worker: close ix's broken environment, remove its
 * files unless another process already replaced them (data.mdb is no
 * longer the file ix had open), and open what dir holds now, a new env.
 * ix stays valid for the sessions that hold it. 0, or the code that keeps
 * ix broken.
 */
int mbindex_rebuild(struct mbindex *ix);

/*
 * mbindex_open, but an environment that does not open because it is broken
 * (garbage, cut short: found by a worker that replaces one that died of
 * it) is removed and made anew. *reset is 1 when that happened.
 */
int mbindex_open_rebuilding(const char *dir, size_t mapsize, struct mbindex **out, int *reset);

/*
 * One spelling per maildir, for the index key and the mailbox lock:
 * repeated slashes, "/./" and a trailing slash go. Symlinks are not
 * resolved (that would cost a syscall per path component at every login).
 */
void index_path_normalize(char *path);

/* Encoding, exposed for tests: *buf is malloc'ed. */
int index_encode(const char *path, const struct index_entry *e, void **buf, size_t *len);
int index_decode(const void *buf, size_t len, const char *path, struct index_entry *e);
int index_decode_head(const void *buf, size_t len, const char *path, struct index_head *head);

#endif

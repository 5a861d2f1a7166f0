/*
 * The password-file backend: Dovecot's passwd-file format,
 *
 *   user:password:uid:gid:gecos:home:shell:extra
 *
 * one user per line; every field after the password may be left out; lines
 * that are blank or start with '#' are skipped. extra is space-separated
 * key=value; userdb_mail= (or mail=) "maildir:PATH[:options]" gives that
 * user's maildir instead of the configured template. The user's POP3
 * policy, named as Courier's authlib OPTIONS name it where it has a name:
 *   disablepop3=1           the account may not use POP3 (-ERR [SYS/PERM]
 *                           after a right password)
 *   disableinsecurepop3=1   no login without TLS (-ERR [AUTH])
 *   pop3_login_delay=N      RFC 2449 LOGIN-DELAY, seconds
 *   pop3_expire=N|never     RFC 2449 EXPIRE, days
 * (booleans: 1/0, yes/no, true/false, y/n, on/off). A value that cannot
 * be read makes that user's logins fail temporarily, logged with the line. uid, gid, gecos and
 * shell are ignored: every mailbox is accessed as the configured mail user.
 *
 * User names match exactly, case included: "Bob" and "bob" are two users, as
 * in Dovecot's passwd-file without auth_username_format. Lower-casing belongs
 * in the worker, before the cache, if ever wanted.
 *
 * The whole file is kept in memory, sorted, and looked up by binary search.
 * It is read again when its inode, size, mtime or ctime changes; editors
 * should replace it by rename(2), since a file caught half-written is loaded
 * as it is.
 */
#ifndef FASTPOP_AUTH_PASSWD_H
#define FASTPOP_AUTH_PASSWD_H

#include <stddef.h>
#include <sys/stat.h>

#include "daemon/runtime/user_policy.h"

/* Bound on the file we agree to hold in memory. */
#define PASSWD_FILE_MAX (64 * 1024 * 1024)

struct passwd_entry {
    const char *user;
    const char *password;   /* as stored, with its {SCHEME} prefix */
    const char *home;       /* "" if not given */
    const char *mail;       /* "" or the PATH of userdb_mail=maildir:PATH[:options] */
    int mail_unsupported;   /* userdb_mail names another format (mbox:, sdbox:...) */
    int pop3_disabled;      /* disablepop3 */
    struct user_policy policy;
    const char *policy_bad; /* the extra field whose value cannot be read, or NULL */
    int line;
};

/* What a load found besides the users, for one log line by the owner. */
struct passwd_stats {
    int users;
    int bad_lines;          /* no ':' or an empty user name */
    int first_bad_line;
    int duplicates;         /* the first line of a user wins */
    int first_duplicate_line;
};

struct passwd_db {
    char path[1024];
    char *text;             /* the file, cut into strings in place */
    size_t text_len;
    struct passwd_entry *entries;
    size_t count;
    struct passwd_stats stats;

    /* The file as last seen, loaded or not. */
    int seen;
    struct stat st;
    int err;                /* 0 = loaded; else the errno that stopped the load */
};

/* Set up an empty db for path (nothing is read yet). */
void passwd_db_init(struct passwd_db *db, const char *path);
/* Free everything, wiping the hashes first. */
void passwd_db_free(struct passwd_db *db);

/*
 * Make the db match the file: stat it and reload if it changed since the
 * last call (or was never read). *changed is set to 1 when the state moved:
 * a reload, a new failure, or a failure with a different errno; the owner
 * logs then, and only then.
 *
 * Returns 0 when the db is usable, -1 (errno set) when it is not: the file
 * is missing, unreadable, or too big. A failed file holds no users: a
 * deleted file must not keep old passwords working.
 */
int passwd_db_refresh(struct passwd_db *db, int *changed);

/* The entry for user (exact match), or NULL. */
const struct passwd_entry *passwd_db_lookup(const struct passwd_db *db, const char *user);

/*
 * Parse text (NUL-terminated, modified in place) into db, replacing its
 * entries. db->text must already own text. Returns 0, or -1 (ENOMEM).
 * Exposed for tests; passwd_db_refresh() is the normal way in.
 */
int passwd_db_parse(struct passwd_db *db);

#endif

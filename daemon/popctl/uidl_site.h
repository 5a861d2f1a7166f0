/*
 * `popctl index uidl-diff --site`: the whole site's UIDL continuity, the
 * report an operator hands over before the cutover. For every user of the
 * password databases (daemon/popctl/site_users.h), the maildir is read as
 * a login would read it (daemon/popctl/index_tool.h: nothing is changed,
 * no message is opened but for X-UIDL headers) and each message that the
 * old server's list (courierpop3dsizelist, dovecot-uidlist) knows is
 * checked: fastpop serves the list's UIDL for it, and so does the index
 * record a warm login would serve. A message older (by the time in its
 * name) than the list but not in it is counted as unmatched: the old server
 * had listed it, fastpop gives it a new UIDL, a client fetches it again.
 *
 * A user is "identical" (nothing to fetch again; also with no list or no
 * maildir: nothing the old server served differs), "different" (some
 * message differs or is unmatched) or "unreadable" (no maildir path, or the
 * maildir or its list cannot be read: EACCES, a symlink, which is never
 * followed). Exit status: 0 all identical, 1 any different, 3 none
 * different but some unreadable, 2 an error before the walk.
 *
 * The walk is paced to rate maildirs a second (UIDL_SITE_RATE_DEFAULT), so
 * a live server's disks keep serving logins; on a terminal a progress line
 * is kept up to date.
 */
#ifndef FASTPOP_POPCTL_UIDL_SITE_H
#define FASTPOP_POPCTL_UIDL_SITE_H

#include "daemon/popctl/site_users.h"

/*
 * Maildirs a second: each costs two directory listings and a list file read,
 * so 20 a second stays a small share of a busy disk's operations, and
 * 50,000 users take about 40 minutes. 0: as fast as the disk goes.
 */
#define UIDL_SITE_RATE_DEFAULT 20
/* Above this the pacing means nothing (a maildir takes longer to read). */
#define UIDL_SITE_RATE_MAX 100000

struct uidl_site_opts {
    int json;
    double rate;            /* maildirs a second, 0: unlimited */
    int progress;           /* a progress line on stdout (a terminal) */
    const char *index_dir;  /* the mailbox index, or NULL */
    int recheck;            /* index_recheck, to judge a record warm */
};

int uidl_site_run(const struct site_users *users, const struct uidl_site_opts *o);

#endif

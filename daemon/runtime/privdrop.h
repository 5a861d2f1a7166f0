/*
 * Dropping privileges, in one place and one fixed order (STYLE.md #10):
 * setgroups, setresgid, setresuid, verify root cannot be regained, clear
 * every capability (libcap), set no_new_privs.
 *
 * Caveat: privdrop_lookup() reads /etc/passwd and /etc/group (NSS); call it
 * before chroot or dropping, and not in a signal handler.
 */
#ifndef FASTPOP_PRIVDROP_H
#define FASTPOP_PRIVDROP_H

#include <sys/types.h>

/* Resolve a user and a group name (group "" = the user's primary group). */
int privdrop_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid);

/*
 * Become uid/gid for good if running as root; otherwise stay who we are.
 * Either way clear all capabilities and set no_new_privs. -1 with errno set
 * if any step fails: the caller must then exit, never serve.
 */
int privdrop_become(uid_t uid, gid_t gid);

/*
 * Run fn(arg) in a short-lived child that has become uid/gid first, and wait
 * for it: how root does something inside a directory a less privileged user
 * owns (README, "Security model"). Returns 0 when fn returned 0, 1 when it
 * returned anything else, -1 when fn could not run: no child (fork's
 * errno), no drop (EPERM) or a child that died otherwise (EIO). fn runs in
 * the child: what it changes in memory is lost, and it logs its own
 * failures. Call it while no SIGCHLD handler reaps children.
 */
int privdrop_run_as(uid_t uid, gid_t gid, int (*fn)(void *arg), void *arg);

#endif

/*
 * The helper's private state: state_dir/authcache/private, a directory
 * fastpop-auth makes for itself, mode 0700, owned by auth_user. authcache/
 * is readable by the mail group (the workers read the credential cache
 * there); private/ is not, and nothing else in fastpop writes into it.
 *
 * It holds what must survive a restart and stay out of the workers' reach:
 * the secret behind SCRAM's made-up salts (auth/scram_server.h), so a user
 * without SCRAM keys, or one who does not exist, is shown the same salt
 * before and after a restart; and the credential cache's verifiers
 * (verifiers.mdb, shm/credcache.h).
 *
 * Files are opened without following links; a directory or file that is
 * not ours, is open to group or others, or has the wrong size is refused
 * (-1, errno EPERM or EINVAL), never repaired: something is wrong there.
 */
#ifndef FASTPOP_AUTH_PRIVATE_DIR_H
#define FASTPOP_AUTH_PRIVATE_DIR_H

#include <stddef.h>

#define PRIVATE_DIR "private"

/* Open (making it 0700 if missing) state_dir/authcache/private. A directory fd, or -1. */
int private_dir_open(const char *state_dir);

/*
 * The secret called name in dirfd, exactly len bytes: read if it exists,
 * else made from the kernel's random source and written (0600, fsync,
 * renamed into place) so every later start reads the same. 0 or -1.
 */
int private_secret(int dirfd, const char *name, unsigned char *out, size_t len);

#endif

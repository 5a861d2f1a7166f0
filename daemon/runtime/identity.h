/*
 * Which user each process runs as. Started as root: workers become
 * user/group, the helper auth_user, the metrics process metrics_user (and
 * its primary group; looked up only when metrics_listen is set). Started as anyone else: everything
 * stays that user and nothing is dropped (ports above 1023 then).
 */
#ifndef FASTPOP_IDENTITY_H
#define FASTPOP_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

#include "daemon/runtime/config.h"

struct identities {
    int   privileged;     /* started as root */
    uid_t mail_uid;
    gid_t mail_gid;
    uid_t auth_uid;
    gid_t auth_gid;
    uid_t metrics_uid;
    gid_t metrics_gid;
};

/* -1 with a "file:line: message" in err (unknown user, or root as a user). */
int identities_resolve(const struct config *cfg, struct identities *ids, char *err,
                       size_t errlen);

#endif

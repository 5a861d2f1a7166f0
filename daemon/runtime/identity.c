#include "identity.h"

#include <stdio.h>
#include <unistd.h>

#include "daemon/runtime/privdrop.h"

static int lookup_error(const struct config *cfg, const char *key, const char *value,
                        const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s:%d: %s: %s \"%s\" does not exist", cfg->path,
             config_line_of(cfg, key), key, what, value);
    return -1;
}

int identities_resolve(const struct config *cfg, struct identities *ids, char *err,
                       size_t errlen)
{
    ids->privileged = geteuid() == 0;
    if (!ids->privileged) {
        ids->mail_uid = ids->auth_uid = ids->metrics_uid = getuid();
        ids->mail_gid = ids->auth_gid = ids->metrics_gid = getgid();
        return 0;
    }
    uid_t unused_uid;
    if (privdrop_lookup(cfg->user, NULL, &ids->mail_uid, &ids->mail_gid) == -1)
        return lookup_error(cfg, "user", cfg->user, "user", err, errlen);
    if (privdrop_lookup(cfg->user, cfg->group, &unused_uid, &ids->mail_gid) == -1)
        return lookup_error(cfg, "group", cfg->group, "group", err, errlen);
    if (privdrop_lookup(cfg->auth_user, NULL, &ids->auth_uid, &ids->auth_gid) == -1)
        return lookup_error(cfg, "auth_user", cfg->auth_user, "user", err, errlen);
    ids->metrics_uid = ids->metrics_gid = 0;
    if (cfg->metrics.addrlen != 0 &&
        privdrop_lookup(cfg->metrics_user, NULL, &ids->metrics_uid, &ids->metrics_gid) == -1)
        return lookup_error(cfg, "metrics_user", cfg->metrics_user, "user", err, errlen);
    /* Running a network-facing process as root would defeat the whole design. */
    if (ids->mail_uid == 0) {
        snprintf(err, errlen, "%s:%d: user must not be root", cfg->path,
                 config_line_of(cfg, "user"));
        return -1;
    }
    if (ids->auth_uid == 0) {
        snprintf(err, errlen, "%s:%d: auth_user must not be root", cfg->path,
                 config_line_of(cfg, "auth_user"));
        return -1;
    }
    if (cfg->metrics.addrlen != 0 && ids->metrics_uid == 0) {
        snprintf(err, errlen, "%s:%d: metrics_user must not be root", cfg->path,
                 config_line_of(cfg, "metrics_user"));
        return -1;
    }
    return 0;
}

#include "worker/auth_client.h"

#include <stdlib.h>

#include "shm/stats.h"

/* Do not hammer a helper that is restarting. */
#define AUTH_RECONNECT_SECONDS 0.5

struct auth_client {
    struct helper_client *hc;
};

static void helper_timing(uint64_t microseconds)
{
    stats_timing(STATS_TIME_HELPER, microseconds);
}

struct auth_client *auth_client_new(struct loop *lp, const char *socket_path,
                                    auth_view_fn *on_view)
{
    struct auth_client *ac = calloc(1, sizeof(*ac));
    if (ac == NULL)
        return NULL;
    const struct helper_client_hooks hooks = {
        .loop = lp->ev, .on_view = on_view, .timing = helper_timing,
        .reconnect_seconds = AUTH_RECONNECT_SECONDS, .require_maildir = 1,
    };
    ac->hc = helper_client_new(socket_path, &hooks);
    if (ac->hc == NULL) {
        free(ac);
        return NULL;
    }
    return ac;
}

int auth_client_connect(struct auth_client *ac)
{
    return helper_client_connect(ac->hc);
}

void auth_client_free(struct auth_client *ac)
{
    if (ac == NULL)
        return;
    helper_client_free(ac->hc);
    free(ac);
}

struct helper_client *auth_client_helper(struct auth_client *ac)
{
    return ac->hc;
}

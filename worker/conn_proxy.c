#include "worker/conn_proxy.h"

#include <netinet/in.h>
#include <string.h>

#include "daemon/runtime/listen.h"
#include "daemon/runtime/log.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "worker/conn_io.h"
#include "worker/conn_limits.h"
#include "worker/proxy.h"

/* The PROXY header names the real client: limits and logs use it from now on. */
static int apply_proxy(struct conn *c, const struct proxy_info *info)
{
    c->proxy_tls = info->tls;
    if (!info->local) {
        enum scoreboard_refusal why;
        const struct config *cfg = c->lp->cfg;
        const struct scoreboard_limits limits = conn_limits(cfg, 0);
        if (scoreboard_conn_move_within(c->lp->sb, c->slot, (const struct sockaddr *)&info->src,
                                        &limits, &why) == -1) {
            int net = why == SB_LIMIT_PER_IPV6_48;
            listen_format_ip((const struct sockaddr *)&info->src, c->ip, sizeof(c->ip));
            conn_reply(c, "-ERR [SYS/TEMP] Too many connections from your %s, "
                          "try again later\r\n", net ? "network" : "address");
            stats_refused(STATS_REFUSED_PER_IP);
            log_info("session user=- ip=%s reason=refused limit=%s max=%d", c->ip,
                     net ? "max_connections_per_ipv6_48" : "max_connections_per_ip",
                     net ? cfg->max_connections_per_ipv6_48 : cfg->max_connections_per_ip);
            conn_finish(c, "refused");
            return 0;
        }
        memcpy(&c->peer, &info->src, sizeof(c->peer));
        listen_format_ip((const struct sockaddr *)&c->peer, c->ip, sizeof(c->ip));
        c->port = ntohs(((const struct sockaddr_in *)&c->peer)->sin_port);
    }
    if (c->listener->tls) {
        c->greet_after_handshake = 1;
        conn_set_state(c, CONN_TLS_HANDSHAKE);
    } else {
        conn_set_state(c, CONN_SESSION);
        c->lp->protocol->greet(c);
    }
    return 0;
}

void conn_proxy_read(struct conn *c)
{
    struct proxy_info info;
    char why[128];
    int rc = conn_io_proxy(c, &info, why, sizeof(why));
    if (rc == 0)
        return;
    if (rc < 0) {
        log_info("conn %s:%u: closed: PROXY header: %s", c->ip, c->port, why);
        conn_close(c, "proxy-invalid");
        return;
    }
    apply_proxy(c, &info);
}

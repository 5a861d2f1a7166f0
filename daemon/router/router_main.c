/*
 * fastpop-router: the answer to nginx's mail auth_http (auth_http.h). For
 * each login nginx asks: the password goes to fastpop-auth with the
 * client's address from Client-IP (so the brute-force penalty counts per
 * client at the edge too); the helper's answer gives the canonical user and
 * the directory's host for that user (ldap_host_attribute, remembered for
 * router_cache_ttl: host_cache.h); route_pick()
 * turns that into a healthy backend (health.h). nginx gets
 *
 *   OK:       Auth-Status: OK, Auth-Server/Auth-Port, Auth-User: canonical name
 *   wrong:    Auth-Status: -ERR text, Auth-Wait: ROUTER_FAIL_WAIT (none after
 *             ROUTER_MAX_ATTEMPTS attempts: nginx then closes the connection)
 *   trouble:  Auth-Status: [SYS/TEMP] text, no Auth-Wait (helper down or slow,
 *             no healthy backend, a request it cannot use)
 *
 *   fastpop-router --listen-fd 3 --auth-socket PATH --backends "name=IP:port ..."
 *                  [--check-interval S] [--cache-ttl S] [--proxy-protocol]
 *                  [--log-level 0-3] [-F]
 *
 * The master (daemon/master/master_router.c) starts it on the router_listen
 * socket it bound, as the mail user, through an exec. It reads no file and
 * holds no password hash; it sees the passwords nginx forwards, as a worker
 * does, and wipes each once sent to the helper.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "auth/helper_client.h"
#include "daemon/router/auth_http.h"
#include "daemon/router/health.h"
#include "daemon/router/host_cache.h"
#include "daemon/router/route_pick.h"
#include "daemon/runtime/clock.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/event_loop.h"
#include "daemon/runtime/http_clients.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/program.h"

/*
 * Logins checked at once. nginx opens one connection per login and waits
 * auth_http_timeout (60 s) for it; the helper takes up to
 * AUTH_TIMEOUT_SECONDS. 256 covers a burst of a busy front end; the next
 * one is told 503, which nginx turns into a temporary error.
 */
#define ROUTER_MAX_CLIENTS 256
/* Longer than the helper may take (AUTH_TIMEOUT_SECONDS), shorter than nginx's 60 s. */
#define ROUTER_CLIENT_SECONDS 20.0
/* How long nginx holds a client after a wrong password before its next try (nginx's docs use 3). */
#define ROUTER_FAIL_WAIT 3
/* After this many failed tries on one connection nginx is told to close it (its docs: 10-20). */
#define ROUTER_MAX_ATTEMPTS 10
/* A health check's answer must come within this (a greeting is immediate on a live backend). */
#define ROUTER_CHECK_TIMEOUT 2.0
/* nginx retries a login the router could not check; this spares the helper a reconnect storm. */
#define ROUTER_HELPER_RETRY_SECONDS 1.0

struct router;

struct pending_login {
    int used;
    struct router *router;
    uint64_t token;
    uint32_t request;             /* the helper's request id (auth/helper_client.h) */
    unsigned attempt;
    int have_host;                /* the host cache knew this login: host is its host */
    char login[USERNAME_MAX];
    char host[AUTH_HOST_MAX];
};

struct router {
    struct ev_loop *loop;
    struct http_clients *http;
    struct helper_client *helper;   /* the connection to fastpop-auth */
    struct health *health;
    struct host_cache *hosts;
    struct route_backend backends[CONFIG_ROUTER_BACKENDS_MAX];
    size_t nbackends;
    struct pending_login logins[ROUTER_MAX_CLIENTS];
};

struct options {
    int listen_fd;
    const char *auth_socket;
    const char *backends;
    int check_interval;
    int cache_ttl;
    int proxy_protocol;
    int log_level;
    int foreground;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: fastpop-router --listen-fd N --auth-socket PATH --backends LIST "
                 "[--check-interval S] [--cache-ttl S] [--proxy-protocol] [--log-level 0-3] "
                 "[-F]\n"
                 "Started by fastpopd for router_listen; not meant to be run by hand.\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .listen_fd = -1, .check_interval = 2, .cache_ttl = 30,
                           .log_level = LOG_LVL_INFO };
    const struct program_option opts[] = {
        { "listen-fd", 0, PROGRAM_ARG_INT, 0, 1024, &o->listen_fd },
        { "auth-socket", 0, PROGRAM_ARG_STRING, 0, 0, &o->auth_socket },
        { "backends", 0, PROGRAM_ARG_STRING, 0, 0, &o->backends },
        { "check-interval", 0, PROGRAM_ARG_INT, 1, 60, &o->check_interval },
        { "cache-ttl", 0, PROGRAM_ARG_INT, 0, 86400, &o->cache_ttl },
        { "proxy-protocol", 0, PROGRAM_ARG_FLAG, 0, 0, &o->proxy_protocol },
        { "log-level", 0, PROGRAM_ARG_INT, 0, LOG_LVL_DEBUG, &o->log_level },
        { NULL, 'F', PROGRAM_ARG_FLAG, 0, 0, &o->foreground },
        { 0 },
    };
    if (program_parse_args(argc, argv, "fastpop-router", opts, usage) == -1)
        return -1;
    if (o->listen_fd < 0 || o->auth_socket == NULL || o->backends == NULL) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static void send_answer(struct router *r, uint64_t token, const char *answer)
{
    http_clients_answer(r->http, token, answer, strlen(answer));
}

static void tempfail(struct router *r, uint64_t token, const char *text)
{
    char out[512];
    if (auth_http_fail(out, sizeof(out), text, 0) > 0)
        send_answer(r, token, out);
}

static struct pending_login *find_login(struct router *r, uint64_t token)
{
    for (size_t i = 0; i < ROUTER_MAX_CLIENTS; i++) {
        if (r->logins[i].used && r->logins[i].token == token)
            return &r->logins[i];
    }
    return NULL;
}

static int valid_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static void on_helper(void *ctx, const struct auth_answer *rep);

static void on_request(void *ctx, uint64_t token, const char *text, size_t len)
{
    struct router *r = ctx;
    struct auth_http_request req;
    enum auth_http_parse rc = auth_http_parse(text, len, &req);
    if (rc != AUTH_HTTP_COMPLETE || !valid_ip(req.client_ip)) {
        log_warning("router: a request that is not nginx's auth_http; answering a temporary "
                    "error");
        tempfail(r, token, "[SYS/TEMP] Temporary authentication failure");
        explicit_bzero(&req, sizeof(req));
        return;
    }
    /* APOP and CRAM-MD5 need the plain password on this side: fastpop does not store it. */
    if (strcmp(req.method, "plain") != 0) {
        char out[512];
        if (auth_http_fail(out, sizeof(out), "[AUTH] Use USER/PASS or AUTH PLAIN", 0) > 0)
            send_answer(r, token, out);
        explicit_bzero(&req, sizeof(req));
        return;
    }
    struct pending_login *l = NULL;
    for (size_t i = 0; i < ROUTER_MAX_CLIENTS && l == NULL; i++) {
        if (!r->logins[i].used)
            l = &r->logins[i];
    }
    if (l == NULL) {   /* cannot be: one per client, as many as clients */
        tempfail(r, token, "[SYS/TEMP] Temporary authentication failure");
        explicit_bzero(&req, sizeof(req));
        return;
    }
    *l = (struct pending_login){ .used = 1, .router = r, .token = token,
                                 .attempt = req.attempt };
    memcpy(l->login, req.user, sizeof(l->login));
    l->have_host = host_cache_get(r->hosts, req.user, clock_mono(), l->host);
    /*
     * The router's requests say whether it needs the user's host
     * (auth/protocol.h): a remembered host lets the helper's credential
     * cache answer, which holds no host.
     */
    l->request = helper_client_check(r->helper, req.user, req.pass, req.client_ip,
                                     l->have_host ? AUTH_MECH_ROUTER : AUTH_MECH_ROUTER_LOOKUP,
                                     on_helper, l);
    explicit_bzero(&req, sizeof(req));
    if (l->request == 0) {
        log_warning("router: auth helper: request not sent: %s", strerror(errno));
        l->used = 0;
        tempfail(r, token, "[SYS/TEMP] Temporary authentication failure");
    }
}

static void on_gone(void *ctx, uint64_t token)
{
    struct router *r = ctx;
    struct pending_login *l = find_login(r, token);
    if (l == NULL)
        return;
    l->used = 0;
    helper_client_cancel(r->helper, l->request);   /* its answer, when it comes, is dropped */
}

static void on_helper(void *ctx, const struct auth_answer *rep)
{
    struct pending_login *l = ctx;
    struct router *r = l->router;
    uint64_t tag = l->token;
    unsigned attempt = l->attempt;
    l->used = 0;
    char out[512];
    /*
     * The directory's word (we asked for it, or the helper's cache missed)
     * is remembered; a cached answer names no host and the remembered one
     * stands, as it does for a stale answer during a directory outage.
     */
    const char *host = rep->host;
    if (rep->status == AUTH_OK && (!l->have_host || rep->host[0] != '\0'))
        host_cache_put(r->hosts, l->login, rep->host, clock_mono());
    else if (l->have_host)
        host = l->host;
    if (rep->status == AUTH_FAIL) {
        unsigned wait = attempt < ROUTER_MAX_ATTEMPTS ? ROUTER_FAIL_WAIT : 0;
        if (auth_http_fail(out, sizeof(out), "[AUTH] Authentication failed", wait) > 0)
            send_answer(r, tag, out);
        return;
    }
    if (rep->status == AUTH_REFUSED) {
        /* A right password for an account that may not use POP3: no retry helps. */
        if (auth_http_fail(out, sizeof(out), "[SYS/PERM] POP3 access is not allowed for this "
                           "account", 0) > 0)
            send_answer(r, tag, out);
        return;
    }
    if (rep->status != AUTH_OK) {
        /* Why is in the log already (auth/helper_client.c). */
        tempfail(r, tag, "[SYS/TEMP] Temporary authentication failure");
        return;
    }
    int i = route_pick(rep->user, host, r->backends, r->nbackends);
    if (i < 0) {
        log_error("router: no backend is up and not draining; user=%s gets a temporary error",
                  rep->user);
        tempfail(r, tag, "[SYS/TEMP] No server available, try again later");
        return;
    }
    const struct route_backend *b = &r->backends[i];
    /* nginx logs in upstream as Auth-User: the canonical name, so every host agrees on it. */
    if (auth_http_ok(out, sizeof(out), b->ip, b->port, rep->user) == 0) {
        tempfail(r, tag, "[SYS/TEMP] Temporary authentication failure");
        return;
    }
    log_debug("router: user=%s to %s (%s:%u)%s", rep->user, b->name, b->ip, b->port,
              host[0] && strcmp(host, b->name) != 0 ? " instead of its host" : "");
    send_answer(r, tag, out);
}

static void setup(struct router *r, const struct options *o)
{
    struct config_backend cb[CONFIG_ROUTER_BACKENDS_MAX];
    char err[256];
    static const struct http_clients_limits lim = {
        .max_clients = ROUTER_MAX_CLIENTS,
        .client_seconds = ROUTER_CLIENT_SECONDS,
        .request_max = AUTH_HTTP_REQUEST_MAX,
        .answer_max = 1024,
    };
    int n = config_parse_backends(o->backends, cb, CONFIG_ROUTER_BACKENDS_MAX, err, sizeof(err));
    if (n < 0)
        log_fatal("router_backends: %s", err);
    for (int i = 0; i < n; i++) {
        struct route_backend *b = &r->backends[i];
        memcpy(b->name, cb[i].name, sizeof(b->name));
        memcpy(b->ip, cb[i].ip, sizeof(b->ip));
        b->port = cb[i].port;
    }
    r->nbackends = (size_t)n;
    r->loop = ev_loop_new();
    if (r->loop == NULL)
        log_fatal("event loop: %s", strerror(errno));
    r->http = http_clients_new(r->loop, o->listen_fd, &lim, on_request, on_gone, r);
    const struct helper_client_hooks hooks = {
        .loop = r->loop, .reconnect_seconds = ROUTER_HELPER_RETRY_SECONDS,
    };
    r->helper = helper_client_new(o->auth_socket, &hooks);
    r->health = health_new(r->loop, r->backends, r->nbackends, o->check_interval,
                           ROUTER_CHECK_TIMEOUT, o->proxy_protocol);
    r->hosts = host_cache_new(o->cache_ttl);
    if (r->http == NULL || r->helper == NULL || r->health == NULL || r->hosts == NULL)
        log_fatal("out of memory");
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_args(argc, argv, &o) == -1)
        return 2;
    program_start("router", o.foreground, o.log_level);
    static struct router r;
    setup(&r, &o);
    log_info("routing to %zu backends", r.nbackends);
    /* Nothing stops the loop: SIGTERM ends the process. */
    ev_loop_run(r.loop);
    log_fatal("epoll_wait: %s", strerror(errno));
}

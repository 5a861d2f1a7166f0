/*
 * passdb routing and the asynchronous (LDAP) side of the helper's decision.
 *
 *   passdb = passwd-file        the password file alone (the default)
 *   passdb = ldap               LDAP alone
 *   passdb = passwd-file ldap   the file first; a user it does not know is
 *                               looked up in LDAP (local service accounts
 *                               next to a directory)
 *
 * authd_start() answers file users at once and hands LDAP users to
 * auth/ldap.c; their answers come back through ldap_done() and go on to
 * ad->done, logged in the same "auth failed ..." format as the file's.
 * authd_check() stays the one synchronous decision for --test and the unit
 * tests: for LDAP it drives the backend until the answer is in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "auth/authd.h"
#include "auth/ldap.h"
#include "auth/text.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/username.h"

/* What authd keeps of a request while LDAP works on it. */
struct pending {
    struct authd *ad;
    uint64_t tag;
    struct auth_result *sync_out;  /* authd_check(): the answer goes here */
    int *sync_done;
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];  /* kept for the credential cache's verifier */
    char ip[AUTH_IP_MAX];
    char mech[AUTH_MECH_MAX];
};

static int parse_passdb(const char *text, int *file, int *ldap)
{
    char copy[CONFIG_NAME_MAX];
    char *save = NULL;
    int n = 0;

    *file = *ldap = 0;
    snprintf(copy, sizeof(copy), "%s", text);
    for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        if (strcmp(w, "passwd-file") == 0 && !*file && !*ldap)
            *file = 1;
        else if (strcmp(w, "ldap") == 0 && !*ldap)
            *ldap = 1;
        else
            return -1;
        n++;
    }
    return n > 0 ? 0 : -1;
}

static void to_result(const struct ldap_answer *ans, struct auth_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = ans->status;
    res->outage = ans->outage;
    res->account_refused = ans->account_refused;
    snprintf(res->user, sizeof(res->user), "%s", ans->user);
    if (ans->status == AUTH_OK)
        snprintf(res->maildir, sizeof(res->maildir), "%s", ans->maildir);
    snprintf(res->message, sizeof(res->message), "%s", ans->message);
}

static void log_answer(const struct auth_request *req, const struct ldap_answer *ans)
{
    if (ans->status == AUTH_OK)
        authd_log_outcome(req, "ok", "");
    else
        authd_log_outcome(req, ans->status == AUTH_FAIL ? "failed" : "tempfail",
                          ans->reason && ans->reason[0] ? ans->reason : "ldap");
}

static void ldap_done(void *arg, void *ctx, const struct ldap_answer *ans)
{
    struct pending *p = ctx;
    struct authd *ad = arg;
    struct auth_request req = { p->user, p->password, p->ip, p->mech };
    struct auth_result res;

    to_result(ans, &res);
    log_answer(&req, ans);
    if (p->sync_out != NULL) {
        *p->sync_out = res;
        *p->sync_done = 1;
    } else if (ad->done != NULL) {
        ad->done(ad->done_arg, p->tag, &req, &res);
    }
    explicit_bzero(p, sizeof(*p));
    free(p);
}

void authd_passdb_setup(struct authd *ad)
{
    struct ldap_settings s;
    char err[512];

    ad->ldap = NULL;
    if (parse_passdb(ad->cfg.passdb, &ad->use_file, &ad->use_ldap) == -1) {
        /* Not fatal for the process: every login gets a temporary failure and the log says why. */
        log_error("passdb \"%s\": expected passwd-file, ldap, or \"passwd-file ldap\"",
                  ad->cfg.passdb);
        ad->use_file = ad->use_ldap = 0;
        return;
    }
    if (!ad->use_ldap)
        return;
    if (ldap_settings_from(&s, &ad->cfg, err, sizeof(err)) == -1) {
        log_error("passdb ldap: %s; LDAP logins fail temporarily until it is fixed", err);
        return;
    }
    snprintf(s.dummy_hash, sizeof(s.dummy_hash), "%s", ad->fallback_hash);
    ad->ldap = ldap_backend_new(&s, ldap_done, ad);
    ldap_settings_wipe(&s);
    if (ad->ldap == NULL)
        log_error("passdb ldap: cannot start the backend: %s", strerror(errno));
}

void authd_passdb_teardown(struct authd *ad)
{
    ldap_backend_free(ad->ldap);
    ad->ldap = NULL;
}

void authd_set_done(struct authd *ad, authd_done_fn *done, void *arg)
{
    ad->done = done;
    ad->done_arg = arg;
}

/* 1 if req belongs to the password file (file-only, or the file knows the user). */
static int for_file(struct authd *ad, const struct auth_request *req)
{
    if (!ad->use_ldap)
        return 1;
    if (!ad->use_file)
        return 0;
    /* A broken file with LDAP behind it: the file's answer (tempfail) is the honest one. */
    if (authd_refresh(ad) == -1)
        return 1;
    return passwd_db_lookup(&ad->db, req->user) != NULL;
}

static int start_ldap(struct authd *ad, const struct auth_request *req, uint64_t tag,
                      struct auth_result *res, struct pending **out)
{
    struct ldap_answer ans;

    *out = NULL;
    memset(res, 0, sizeof(*res));
    if (ad->ldap == NULL) {
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "LDAP is not configured correctly");
        authd_log_outcome(req, "tempfail", ad->use_ldap ? "ldap-config" : "passdb-config");
        return 1;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "out of memory");
        authd_log_outcome(req, "tempfail", "no-memory");
        return 1;
    }
    p->ad = ad;
    p->tag = tag;
    snprintf(p->user, sizeof(p->user), "%s", req->user);
    snprintf(p->password, sizeof(p->password), "%s", req->password);
    snprintf(p->ip, sizeof(p->ip), "%s", req->ip);
    snprintf(p->mech, sizeof(p->mech), "%s", req->mechanism);
    if (ldap_backend_submit(ad->ldap, req->user, req->password, p, &ans) == -1) {
        to_result(&ans, res);
        log_answer(req, &ans);
        explicit_bzero(p, sizeof(*p));
        free(p);
        return 1;
    }
    *out = p;
    return 0;
}

/*
 * A name outside the rule (daemon/runtime/username.h) never reaches a database: a
 * worker checks it already, so only a broken or hostile worker sends one.
 * 1 with a failure in res, else 0.
 */
static int refuse_name(const struct auth_request *req, struct auth_result *res)
{
    if (req->user[0] == '\0' || username_check(req->user) == 0)
        return 0;   /* empty: the databases answer "empty-user" themselves */
    memset(res, 0, sizeof(*res));
    res->status = AUTH_FAIL;
    authd_log_outcome(req, "failed", "bad-user-name");
    return 1;
}

int authd_start(struct authd *ad, const struct auth_request *req, uint64_t tag,
                struct auth_result *res)
{
    struct pending *p;

    if (refuse_name(req, res))
        return 1;
    if (!ad->use_file && !ad->use_ldap) {
        memset(res, 0, sizeof(*res));
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "passdb is not configured correctly");
        authd_log_outcome(req, "tempfail", "passdb-config");
        return 1;
    }
    if (for_file(ad, req)) {
        authd_check_file(ad, req, res);
        return 1;
    }
    return start_ldap(ad, req, tag, res, &p);
}

void authd_check(struct authd *ad, const struct auth_request *req, struct auth_result *res)
{
    struct pending *p;
    int done = 0;

    if (refuse_name(req, res))
        return;
    if (!ad->use_ldap && !ad->use_file) {
        (void)authd_start(ad, req, 0, res);   /* the passdb-config tempfail */
        return;
    }
    if (for_file(ad, req)) {
        authd_check_file(ad, req, res);
        return;
    }
    if (start_ldap(ad, req, 0, res, &p) == 1)
        return;
    p->sync_out = res;
    p->sync_done = &done;
    /* Synchronous on purpose: --test and the tests have nothing else to do. */
    while (!done) {
        struct epoll_event ev;
        ldap_backend_poll(ad->ldap);
        if (done)
            break;
        int ms = ldap_backend_timeout_ms(ad->ldap);
        (void)epoll_wait(ldap_backend_fd(ad->ldap), &ev, 1, ms < 0 || ms > 1000 ? 1000 : ms);
    }
}

int authd_fd(const struct authd *ad)
{
    return ad->ldap ? ldap_backend_fd(ad->ldap) : -1;
}

int authd_timeout_ms(const struct authd *ad)
{
    return ad->ldap ? ldap_backend_timeout_ms(ad->ldap) : -1;
}

void authd_poll(struct authd *ad)
{
    if (ad->ldap)
        ldap_backend_poll(ad->ldap);
}

/*
 * Routing between the password databases (auth/passdb.h), and the
 * asynchronous (LDAP, authlib) side of the decision: passdb_start() answers
 * file users at once and hands the others to auth/passdb_ldap.c or
 * auth/passdb_authlib.c; their answers come back through backend_answered()
 * and go on to pdb->done, logged in the
 * same "auth failed ..." format as the file's. passdb_check() is the
 * synchronous decision for --test: for LDAP it drives the backend until the
 * answer is in.
 */
#include "auth/passdb.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "auth/outcome.h"
#include "auth/passdb_authlib.h"
#include "auth/passdb_file.h"
#include "auth/passdb_ldap.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/username.h"

/* What passdb keeps of a request while LDAP works on it. */
struct pending {
    struct passdb *pdb;
    uint64_t tag;
    struct auth_result *sync_out;  /* passdb_check(): the answer goes here */
    int *sync_done;
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];  /* kept for the credential cache's verifier */
    char ip[AUTH_IP_MAX];
    char mech[AUTH_MECH_MAX];
};

/* The words of passdb: the file first if at all, then at most one of ldap and authlib. */
static int parse_passdb(const char *text, int *file, int *ldap, int *authlib)
{
    char copy[CONFIG_NAME_MAX];
    char *save = NULL;
    int n = 0;

    *file = *ldap = *authlib = 0;
    snprintf(copy, sizeof(copy), "%s", text);
    for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        if (strcmp(w, "passwd-file") == 0 && !*file && !*ldap && !*authlib)
            *file = 1;
        else if (strcmp(w, "ldap") == 0 && !*ldap && !*authlib)
            *ldap = 1;
        else if (strcmp(w, "authlib") == 0 && !*ldap && !*authlib)
            *authlib = 1;
        else
            return -1;
        n++;
    }
    return n > 0 ? 0 : -1;
}

static void to_result(const struct passdb_ldap_answer *ans, struct auth_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = ans->status;
    res->outage = ans->outage;
    res->account_refused = ans->account_refused;
    snprintf(res->user, sizeof(res->user), "%s", ans->user);
    if (ans->status == AUTH_OK) {
        snprintf(res->maildir, sizeof(res->maildir), "%s", ans->maildir);
        snprintf(res->host, sizeof(res->host), "%s", ans->host);
        res->policy = ans->policy;
    }
    snprintf(res->message, sizeof(res->message), "%s", ans->message);
}

static void log_answer(const struct auth_request *req, const struct passdb_ldap_answer *ans)
{
    if (ans->status == AUTH_OK)
        outcome_log(req, "ok", "");
    else
        outcome_log(req, ans->status == AUTH_FAIL       ? "failed"
                         : ans->status == AUTH_REFUSED ? "refused"
                                                       : "tempfail",
                    ans->reason && ans->reason[0] ? ans->reason : "ldap");
}

static void backend_answered(void *arg, void *ctx, const struct passdb_ldap_answer *ans)
{
    struct pending *p = ctx;
    struct passdb *pdb = arg;
    struct auth_request req = { p->user, p->password, p->ip, p->mech };
    struct auth_result res;

    to_result(ans, &res);
    log_answer(&req, ans);
    if (p->sync_out != NULL) {
        *p->sync_out = res;
        *p->sync_done = 1;
    } else if (pdb->done != NULL) {
        pdb->done(pdb->done_arg, p->tag, &req, &res);
    }
    explicit_bzero(p, sizeof(*p));
    free(p);
}

static void authlib_setup(struct passdb *pdb)
{
    struct passdb_authlib_settings s;
    char err[512];

    if (passdb_authlib_settings_from(&s, &pdb->cfg, err, sizeof(err)) == -1) {
        log_error("passdb authlib: %s; authlib logins fail temporarily until it is fixed", err);
        return;
    }
    pdb->authlib = passdb_authlib_new(&s, backend_answered, pdb);
    if (pdb->authlib == NULL)
        log_error("passdb authlib: cannot start the backend: %s", strerror(errno));
}

static void passdb_setup(struct passdb *pdb)
{
    struct passdb_ldap_settings s;
    char err[512];
    int authlib;

    pdb->ldap = NULL;
    pdb->authlib = NULL;
    if (parse_passdb(pdb->cfg.passdb, &pdb->use_file, &pdb->use_ldap, &authlib) == -1) {
        /* Not fatal for the process: every login gets a temporary failure and the log says why. */
        log_error("passdb \"%s\": expected passwd-file, ldap, authlib, \"passwd-file ldap\" "
                  "or \"passwd-file authlib\"", pdb->cfg.passdb);
        pdb->use_file = pdb->use_ldap = 0;
        return;
    }
    /* The backend behind the file is asynchronous either way; use_ldap says "there is one". */
    if (authlib) {
        pdb->use_ldap = 1;
        authlib_setup(pdb);
        return;
    }
    if (!pdb->use_ldap)
        return;
    if (passdb_ldap_settings_from(&s, &pdb->cfg, err, sizeof(err)) == -1) {
        log_error("passdb ldap: %s; LDAP logins fail temporarily until it is fixed", err);
        return;
    }
    snprintf(s.dummy_hash, sizeof(s.dummy_hash), "%s", pdb->fallback_hash);
    pdb->ldap = passdb_ldap_new(&s, backend_answered, pdb);
    passdb_ldap_settings_wipe(&s);
    if (pdb->ldap == NULL)
        log_error("passdb ldap: cannot start the backend: %s", strerror(errno));
}

static void passdb_teardown(struct passdb *pdb)
{
    passdb_ldap_free(pdb->ldap);
    pdb->ldap = NULL;
    passdb_authlib_free(pdb->authlib);
    pdb->authlib = NULL;
}

static int make_fallback_hash(struct passdb *pdb)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    int rc = -1;

    if (cd == NULL)
        return -1;
    /* Random salt and random password: nothing can ever match it. */
    if (crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof(setting)) != NULL) {
        const char *h = crypt_rn(setting + 3, setting, cd, sizeof(*cd));
        if (h != NULL && h[0] != '*' && strlen(h) < sizeof(pdb->fallback_hash)) {
            strcpy(pdb->fallback_hash, h);
            rc = 0;
        }
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return rc;
}

int passdb_init(struct passdb *pdb, const struct config *cfg)
{
    memset(pdb, 0, sizeof(*pdb));
    pdb->cfg = *cfg;
    passwd_db_init(&pdb->db, cfg->passwd_file);
    if (make_fallback_hash(pdb) == -1)
        return -1;
    pdb->dummy = pdb->fallback_hash;
    passdb_setup(pdb);
    return 0;
}

void passdb_reconfigure(struct passdb *pdb, const struct config *cfg)
{
    passdb_teardown(pdb);
    passwd_db_free(&pdb->db);
    passwd_db_init(&pdb->db, cfg->passwd_file);
    pdb->dummy = pdb->fallback_hash;
    pdb->cfg = *cfg;
    passdb_setup(pdb);
}

void passdb_free(struct passdb *pdb)
{
    passdb_teardown(pdb);
    passwd_db_free(&pdb->db);
    pdb->dummy = pdb->fallback_hash;
}

void passdb_set_done(struct passdb *pdb, passdb_done_fn *done, void *arg)
{
    pdb->done = done;
    pdb->done_arg = arg;
}

/* 1 if req belongs to the password file (file-only, or the file knows the user). */
static int for_file(struct passdb *pdb, const struct auth_request *req)
{
    if (!pdb->use_ldap)
        return 1;
    if (!pdb->use_file)
        return 0;
    /* A broken file with LDAP behind it: the file's answer (tempfail) is the honest one. */
    if (passdb_file_refresh(pdb) == -1)
        return 1;
    return passwd_db_lookup(&pdb->db, req->user) != NULL;
}

static int start_ldap(struct passdb *pdb, const struct auth_request *req, uint64_t tag,
                      struct auth_result *res, struct pending **out)
{
    struct passdb_ldap_answer ans;

    *out = NULL;
    memset(res, 0, sizeof(*res));
    if (pdb->ldap == NULL && pdb->authlib == NULL) {
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "the password database is not configured "
                 "correctly");
        outcome_log(req, "tempfail", pdb->use_ldap ? "backend-config" : "passdb-config");
        return 1;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "out of memory");
        outcome_log(req, "tempfail", "no-memory");
        return 1;
    }
    p->pdb = pdb;
    p->tag = tag;
    snprintf(p->user, sizeof(p->user), "%s", req->user);
    snprintf(p->password, sizeof(p->password), "%s", req->password);
    snprintf(p->ip, sizeof(p->ip), "%s", req->ip);
    snprintf(p->mech, sizeof(p->mech), "%s", req->mechanism);
    int queued = pdb->ldap ? passdb_ldap_submit(pdb->ldap, req->user, req->password, p, &ans)
                           : passdb_authlib_submit(pdb->authlib, req->user, req->password, p,
                                                   &ans);
    if (queued == -1) {
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
    outcome_log(req, "failed", "bad-user-name");
    return 1;
}

int passdb_start(struct passdb *pdb, const struct auth_request *req, uint64_t tag,
                struct auth_result *res)
{
    struct pending *p;

    if (refuse_name(req, res))
        return 1;
    if (!pdb->use_file && !pdb->use_ldap) {
        memset(res, 0, sizeof(*res));
        res->status = AUTH_TEMPFAIL;
        snprintf(res->message, sizeof(res->message), "passdb is not configured correctly");
        outcome_log(req, "tempfail", "passdb-config");
        return 1;
    }
    if (for_file(pdb, req)) {
        passdb_file_check(pdb, req, res);
        return 1;
    }
    return start_ldap(pdb, req, tag, res, &p);
}

void passdb_check(struct passdb *pdb, const struct auth_request *req, struct auth_result *res)
{
    struct pending *p;
    int done = 0;

    if (refuse_name(req, res))
        return;
    if (!pdb->use_ldap && !pdb->use_file) {
        (void)passdb_start(pdb, req, 0, res);   /* the passdb-config tempfail */
        return;
    }
    if (for_file(pdb, req)) {
        passdb_file_check(pdb, req, res);
        return;
    }
    if (start_ldap(pdb, req, 0, res, &p) == 1)
        return;
    p->sync_out = res;
    p->sync_done = &done;
    /* Synchronous on purpose: --test and the tests have nothing else to do. */
    while (!done) {
        struct epoll_event ev;
        passdb_poll(pdb);
        if (done)
            break;
        int ms = passdb_timeout_ms(pdb);
        (void)epoll_wait(passdb_fd(pdb), &ev, 1, ms < 0 || ms > 1000 ? 1000 : ms);
    }
}

int passdb_fd(const struct passdb *pdb)
{
    if (pdb->authlib)
        return passdb_authlib_fd(pdb->authlib);
    return pdb->ldap ? passdb_ldap_fd(pdb->ldap) : -1;
}

int passdb_timeout_ms(const struct passdb *pdb)
{
    if (pdb->authlib)
        return passdb_authlib_timeout_ms(pdb->authlib);
    return pdb->ldap ? passdb_ldap_timeout_ms(pdb->ldap) : -1;
}

void passdb_poll(struct passdb *pdb)
{
    if (pdb->authlib)
        passdb_authlib_poll(pdb->authlib);
    if (pdb->ldap)
        passdb_ldap_poll(pdb->ldap);
}

#include "worker/expire.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/runtime/log.h"
#include "shm/policy_store.h"
#include "shm/stats.h"
#include "worker/login_policy.h"
#include "worker/mailbox.h"
#include "worker/pop3.h"

uint32_t expire_days(const struct conn *c)
{
    int global = c->lp->cfg->pop3_expire;
    return user_policy_expire(&c->policy,
                              global < 0 ? USER_POLICY_EXPIRE_NEVER : (uint32_t)global);
}

void expire_note_retr(struct conn *c, size_t i)
{
    struct pop3_session *s = c->session;

    if (s == NULL || s->md == NULL || i >= s->md->count ||
        expire_days(c) == USER_POLICY_EXPIRE_NEVER)
        return;
    if (c->expire_retrieved == NULL &&
        (c->expire_retrieved = calloc(s->md->count, 1)) == NULL)
        return;   /* no memory: this message is not marked, so it is kept longer */
    c->expire_retrieved[i] = 1;
}

/* The store pass over s's messages: retrieved marks in, days out; forget: the deleted ones. */
static struct policy_store_msg *pass(struct conn *c, struct policy_store *ps, int forget,
                                     uint32_t today)
{
    const struct maildir *md = c->session->md;
    struct policy_store_msg *m = calloc(md->count ? md->count : 1, sizeof(*m));

    if (m == NULL)
        return NULL;
    for (size_t i = 0; i < md->count; i++) {
        m[i].uidl = maildir_msg_uidl(md, i, &m[i].uidl_len);
        m[i].retrieved_now = !forget && c->expire_retrieved && c->expire_retrieved[i];
        /* forget: only those removed; the others are left alone (a day-less pass of them). */
        m[i].forget = forget && md->msgs[i].deleted;
        if (forget && !md->msgs[i].deleted)
            m[i].uidl_len = 0;   /* no key: skipped */
    }
    int rc = policy_store_retrievals(ps, c->session->root, m, md->count, today);
    if (rc != 0) {
        login_policy_store_failed("expire", rc);
        free(m);
        return NULL;
    }
    return m;
}

int expire_due(uint32_t day, uint32_t today, uint32_t days)
{
    if (day == POLICY_STORE_NOT_RETRIEVED || day > today)
        return 0;
    return days == 0 || today - day > days;
}

unsigned expire_before_update(struct conn *c)
{
    struct pop3_session *s = c->session;
    uint32_t days = expire_days(c);
    unsigned expired = 0;

    if (days == USER_POLICY_EXPIRE_NEVER || s == NULL)
        return 0;
    struct policy_store *ps = login_policy_store(c->lp->cfg);
    /* The days of every message are needed: the list, if the session did not load it. */
    if (ps == NULL || mailbox_load(s, c->user) == -1)
        return 0;
    uint32_t today = (uint32_t)(time(NULL) / 86400);
    struct policy_store_msg *m = pass(c, ps, 0, today);
    if (m == NULL)
        return 0;
    for (size_t i = 0; i < s->md->count; i++) {
        struct maildir_msg *msg = &s->md->msgs[i];
        if (!msg->deleted && expire_due(m[i].day, today, days)) {
            /* What DELE does: mailbox_update unlinks it with the client's own. */
            msg->deleted = 1;
            s->live_count--;
            s->live_size -= msg->size;
            expired++;
        }
    }
    /* Records of messages that went another way (another program) go too. */
    size_t dropped;
    int rc = policy_store_prune(ps, s->root, m, s->md->count, &dropped);
    if (rc != 0)
        login_policy_store_failed("expire prune", rc);
    free(m);
    if (expired > 0) {
        stats_add(SV_EXPIRED, expired);
        log_info("expire user=%s messages=%u expire_days=%u", c->user, expired, days);
    }
    return expired;
}

void expire_after_update(struct conn *c)
{
    struct pop3_session *s = c->session;

    if (expire_days(c) == USER_POLICY_EXPIRE_NEVER || s == NULL || s->md == NULL ||
        s->live_count == s->count)
        return;
    struct policy_store *ps = login_policy_store(c->lp->cfg);
    if (ps != NULL)
        free(pass(c, ps, 1, (uint32_t)(time(NULL) / 86400)));
}

void expire_release(struct conn *c)
{
    free(c->expire_retrieved);
    c->expire_retrieved = NULL;
}

/* EXPIRE n or EXPIRE NEVER, with USER when given. */
static void capa_line(struct conn *c, uint32_t days, const char *user)
{
    if (days == USER_POLICY_EXPIRE_NEVER)
        conn_reply(c, "EXPIRE NEVER%s\r\n", user);
    else
        conn_reply(c, "EXPIRE %u%s\r\n", days, user);
}

void expire_capa(struct conn *c)
{
    const struct config *cfg = c->lp->cfg;

    if (pop3_in(c, POP3_TRANSACTION)) {
        if (expire_days(c) != USER_POLICY_EXPIRE_NEVER || (c->policy.flags & USER_POLICY_HAS_EXPIRE))
            capa_line(c, expire_days(c), "");
        return;
    }
    /* As LOGIN-DELAY (worker/login_policy.c): USER when a user's own value may differ. */
    int per_user = cfg->ldap_expire_attribute[0] != '\0' ||
                   strstr(cfg->passdb, "passwd-file") != NULL;
    if (cfg->pop3_expire >= 0 || cfg->ldap_expire_attribute[0] != '\0')
        capa_line(c, cfg->pop3_expire < 0 ? USER_POLICY_EXPIRE_NEVER : (uint32_t)cfg->pop3_expire,
                  per_user ? " USER" : "");
}

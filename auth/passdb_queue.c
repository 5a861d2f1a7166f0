#include "auth/passdb_queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE PASSDB_QUEUE_NONE

int passdb_slots_init(struct passdb_slots *s, int count)
{
    s->count = count;
    s->next = calloc((size_t)count, sizeof(*s->next));
    s->prev = calloc((size_t)count, sizeof(*s->prev));
    if (s->next == NULL || s->prev == NULL) {
        passdb_slots_fini(s);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < count; i++) {
        s->next[i] = i + 1 < count ? i + 1 : NONE;
        s->prev[i] = NONE;
    }
    s->free_head = count > 0 ? 0 : NONE;
    s->in_use = 0;
    return 0;
}

void passdb_slots_fini(struct passdb_slots *s)
{
    free(s->next);
    free(s->prev);
    s->next = s->prev = NULL;
}

int passdb_slots_take(struct passdb_slots *s)
{
    int i = s->free_head;
    if (i == NONE)
        return NONE;
    s->free_head = s->next[i];
    s->next[i] = s->prev[i] = NONE;
    s->in_use++;
    return i;
}

void passdb_slots_put(struct passdb_slots *s, int i)
{
    s->prev[i] = NONE;
    s->next[i] = s->free_head;
    s->free_head = i;
    s->in_use--;
}

void passdb_fifo_init(struct passdb_fifo *q)
{
    q->head = q->tail = NONE;
}

void passdb_fifo_push(struct passdb_slots *s, struct passdb_fifo *q, int i)
{
    s->prev[i] = q->tail;
    s->next[i] = NONE;
    if (q->tail != NONE)
        s->next[q->tail] = i;
    else
        q->head = i;
    q->tail = i;
}

void passdb_fifo_remove(struct passdb_slots *s, struct passdb_fifo *q, int i)
{
    if (s->prev[i] != NONE)
        s->next[s->prev[i]] = s->next[i];
    else
        q->head = s->next[i];
    if (s->next[i] != NONE)
        s->prev[s->next[i]] = s->prev[i];
    else
        q->tail = s->prev[i];
    s->next[i] = s->prev[i] = NONE;
}

int passdb_fifo_pop(struct passdb_slots *s, struct passdb_fifo *q)
{
    int i = q->head;
    if (i != NONE)
        passdb_fifo_remove(s, q, i);
    return i;
}

int passdb_fifo_next(const struct passdb_slots *s, int i)
{
    return s->next[i];
}

int passdb_slots_admit(struct passdb_slots *s, const struct passdb_admit_rules *rules,
                       const char *user, const char *password, struct passdb_ldap_answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    ans->status = AUTH_FAIL;
    /* Never let an empty password through: at LDAP it would be an unauthenticated bind. */
    if (user[0] == '\0' || password[0] == '\0') {
        ans->reason = user[0] ? "empty-password" : "empty-user";
        return NONE;
    }
    /* A newline would end the field early and smuggle in another: not sendable. */
    if (rules->refuse_newline && (strchr(password, '\n') != NULL || strchr(user, '\n') != NULL)) {
        ans->reason = "bad-password";
        return NONE;
    }
    if (strlen(user) >= AUTH_USER_MAX || strlen(password) >= AUTH_PASS_MAX) {
        ans->reason = "too-long";
        return NONE;
    }
    int i = passdb_slots_take(s);
    if (i == NONE) {
        ans->status = AUTH_TEMPFAIL;
        ans->outage = 1;   /* the backend is not keeping up */
        ans->reason = rules->busy_reason;
        snprintf(ans->message, sizeof(ans->message), "%d %s already waiting", s->count,
                 rules->busy_waiting);
    }
    return i;
}

/*
 * The parts of the scoreboard that never take the workers' lock: what the
 * root master does (popctl who/kick/status/drain, /metrics, reaping a dead
 * worker) and the flags the workers poll. A worker can hold the lock forever
 * or scribble any byte of the region; none of this can then hang, read or
 * write out of bounds, or return an unterminated string.
 */
#include "shm/scoreboard_region.h"

#include <stdio.h>
#include <string.h>

/* How often a worker re-reads a drain message the master is rewriting. */
#define DRAIN_READ_TRIES 16

unsigned scoreboard_active(struct scoreboard *sb)
{
    /* Counted from the owners, not taken from the shared count. */
    unsigned n = 0;
    for (uint32_t i = 0; i < sb->capacity; i++)
        n += sb_slot_owner(&sb->conns[i]) != SLOT_FREE;
    return n;
}

unsigned scoreboard_active_hint(const struct scoreboard *sb)
{
    unsigned n = __atomic_load_n(&sb->shared->active, __ATOMIC_RELAXED);
    return n < sb->capacity ? n : sb->capacity;
}

/*
 * Free every slot of a dead worker without the lock: clear the owner (only
 * that worker ever wrote it; no live worker touches such a slot), then mark
 * the tables stale so the next worker to take the lock derives them again
 * from the slots. The mailbox locks and per-address counts are thus right
 * before any worker can next consult them.
 */
unsigned scoreboard_reap_owner(struct scoreboard *sb, pid_t owner)
{
    unsigned n = 0;
    /* 0 marks a free slot: there is nothing to reap. */
    if (owner <= 0)
        return 0;
    for (uint32_t i = 0; i < sb->capacity; i++) {
        struct sb_conn *c = &sb->conns[i];
        if (sb_slot_owner(c) == owner) {
            sb_slot_set_owner(c, SLOT_FREE);
            n++;
        }
    }
    if (n > 0)
        __atomic_store_n(&sb->shared->stale, 1, __ATOMIC_RELEASE);
    return n;
}

struct scoreboard_session *scoreboard_session(struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return NULL;
    return &sb->conns[slot].session;
}

static void terminate(char *s, size_t size)
{
    s[size - 1] = '\0';
}

int scoreboard_peek(struct scoreboard *sb, unsigned slot, struct scoreboard_session *out,
                    uint8_t ip[16], pid_t *owner)
{
    if (slot >= sb->capacity)
        return -1;
    const struct sb_conn *c = &sb->conns[slot];
    *owner = sb_slot_owner(c);
    if (*owner == SLOT_FREE)
        return 0;
    /* A copy: whatever the owner writes meanwhile, the caller's bytes stay put. */
    memcpy(ip, c->ip, 16);
    memcpy(out, &c->session, sizeof(*out));
    terminate(out->user, sizeof(out->user));
    terminate(out->state, sizeof(out->state));
    terminate(out->tls, sizeof(out->tls));
    return 1;
}

void scoreboard_kick(struct scoreboard *sb, unsigned slot, enum scoreboard_kick how)
{
    if (slot >= sb->capacity)
        return;
    __atomic_store_n(&sb->conns[slot].kick, (uint8_t)how, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sb->shared->changes, 1, __ATOMIC_RELEASE);
}

enum scoreboard_kick scoreboard_kicked(const struct scoreboard *sb, int slot)
{
    if (slot < 0 || (uint32_t)slot >= sb->capacity)
        return SB_KICK_NONE;
    uint8_t how = __atomic_load_n(&sb->conns[slot].kick, __ATOMIC_RELAXED);
    return how <= SB_KICK_NOW ? (enum scoreboard_kick)how : SB_KICK_NOW;
}

/*
 * The master is the only writer of the drain message: a sequence counter
 * it keeps in its own memory, odd while it writes (a seqlock), lets the
 * workers copy a whole message without any lock.
 */
void scoreboard_set_drain(struct scoreboard *sb, int on, const char *message)
{
    struct sb_shared *sh = sb->shared;
    char text[SCOREBOARD_DRAIN_MESSAGE_MAX + 1];
    snprintf(text, sizeof(text), "%s", message ? message : "");
    text[strcspn(text, "\r\n")] = '\0';
    sb->master_draining = on != 0;
    __atomic_store_n(&sh->drain_seq, ++sb->master_drain_seq, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (size_t i = 0; i < sizeof(text); i++)
        __atomic_store_n(&sh->drain_message[i], text[i], __ATOMIC_RELAXED);
    __atomic_store_n(&sh->drain_seq, ++sb->master_drain_seq, __ATOMIC_RELEASE);
    __atomic_store_n(&sh->draining, on ? 1u : 0u, __ATOMIC_RELEASE);
    __atomic_add_fetch(&sh->changes, 1, __ATOMIC_RELEASE);
}

int scoreboard_master_draining(const struct scoreboard *sb)
{
    return sb->master_draining;
}

int scoreboard_draining(struct scoreboard *sb, char *message, size_t len)
{
    const struct sb_shared *sh = sb->shared;
    if (!__atomic_load_n(&sh->draining, __ATOMIC_ACQUIRE))
        return 0;
    if (message == NULL || len == 0)
        return 1;
    char text[SCOREBOARD_DRAIN_MESSAGE_MAX + 1] = "";
    for (int tries = 0; tries < DRAIN_READ_TRIES; tries++) {
        uint32_t before = __atomic_load_n(&sh->drain_seq, __ATOMIC_ACQUIRE);
        if (before & 1u)
            continue;
        for (size_t i = 0; i < sizeof(text); i++)
            text[i] = __atomic_load_n(&sh->drain_message[i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&sh->drain_seq, __ATOMIC_RELAXED) == before)
            break;
        text[0] = '\0';
    }
    /* One line, whatever the region holds: it goes to clients as a reply. */
    terminate(text, sizeof(text));
    text[strcspn(text, "\r\n")] = '\0';
    snprintf(message, len, "%s", text);
    return 1;
}

uint32_t scoreboard_changes(const struct scoreboard *sb)
{
    return __atomic_load_n(&sb->shared->changes, __ATOMIC_ACQUIRE);
}

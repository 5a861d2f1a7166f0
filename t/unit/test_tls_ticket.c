/*
 * worker/tls_ticket: the rotating session-ticket key schedule. A key
 * decrypts in its own period and the next one, never later; processes that
 * share a first secret (the workers, forked from the master) agree on every
 * key however they step through time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "worker/tls_ticket.h"

#define LIFETIME 3600
#define T0 ((time_t)1700000000 / LIFETIME * LIFETIME)   /* a period's first second */

static void test_previous_key_kept_one_period(void **state)
{
    struct tls_ticket_keys k;
    const struct tls_ticket_key *key;
    unsigned char issued[TLS_TICKET_NAME_LEN];
    (void)state;
    assert_int_equal(tls_ticket_keys_init(&k, LIFETIME, T0 + 10), 0);
    memcpy(issued, k.current.name, sizeof(issued));
    assert_int_equal(tls_ticket_keys_find(&k, issued, &key), 1);

    /* Later in the same period: nothing changes. */
    tls_ticket_keys_advance(&k, T0 + LIFETIME - 1);
    assert_memory_equal(k.current.name, issued, sizeof(issued));

    /* One rotation: new tickets get a new key, the old one still decrypts (renew). */
    tls_ticket_keys_advance(&k, T0 + LIFETIME);
    assert_memory_not_equal(k.current.name, issued, sizeof(issued));
    assert_int_equal(tls_ticket_keys_find(&k, issued, &key), 2);
    assert_memory_equal(key->name, issued, sizeof(issued));

    /* Two rotations: the first key is gone, from the state too. */
    tls_ticket_keys_advance(&k, T0 + 2 * LIFETIME);
    assert_int_equal(tls_ticket_keys_find(&k, issued, &key), 0);
    assert_memory_not_equal(k.previous.name, issued, sizeof(issued));
    tls_ticket_keys_wipe(&k);
}

static void test_processes_agree(void **state)
{
    struct tls_ticket_keys master, walker, sleeper;
    (void)state;
    assert_int_equal(tls_ticket_keys_init(&master, LIFETIME, T0), 0);
    walker = sleeper = master;   /* two workers forked at T0 */
    for (int p = 1; p <= 5; p++)
        tls_ticket_keys_advance(&walker, T0 + p * LIFETIME + 7);
    /* One that slept through four rotations computes the same two keys. */
    tls_ticket_keys_advance(&sleeper, T0 + 5 * LIFETIME + 100);
    assert_memory_equal(&walker.current, &sleeper.current, sizeof(walker.current));
    assert_memory_equal(&walker.previous, &sleeper.previous, sizeof(walker.previous));
    assert_memory_equal(walker.secret, sleeper.secret, sizeof(walker.secret));
    /* A worker forked later, from a master that kept up, agrees as well. */
    tls_ticket_keys_advance(&master, T0 + 3 * LIFETIME);
    struct tls_ticket_keys late = master;
    tls_ticket_keys_advance(&late, T0 + 5 * LIFETIME);
    assert_memory_equal(&late.current, &walker.current, sizeof(late.current));
    /* A clock that steps back changes nothing. */
    tls_ticket_keys_advance(&late, T0);
    assert_memory_equal(&late.current, &walker.current, sizeof(late.current));
}

static void test_first_secrets_differ(void **state)
{
    struct tls_ticket_keys a, b;
    (void)state;
    assert_int_equal(tls_ticket_keys_init(&a, LIFETIME, T0), 0);
    assert_int_equal(tls_ticket_keys_init(&b, LIFETIME, T0), 0);
    assert_memory_not_equal(a.current.name, b.current.name, TLS_TICKET_NAME_LEN);
    assert_memory_not_equal(a.current.aes, b.current.aes, sizeof(a.current.aes));
    const struct tls_ticket_key *key;
    assert_int_equal(tls_ticket_keys_find(&a, b.current.name, &key), 0);
    assert_false(a.previous.valid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_previous_key_kept_one_period),
        cmocka_unit_test(test_processes_agree),
        cmocka_unit_test(test_first_secrets_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

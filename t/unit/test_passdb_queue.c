/*
 * The request table the LDAP and authlib databases share (auth/passdb_queue.c):
 * arrival order, taking a request out of the middle of a queue, slots coming
 * back, and what a request is told before it gets a slot.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "auth/passdb_queue.h"

#define NONE PASSDB_QUEUE_NONE

static const struct passdb_admit_rules ldap_rules = { 0, "ldap-busy", "LDAP lookups" };
static const struct passdb_admit_rules authlib_rules = { 1, "authlib-busy", "authlib requests" };

static void test_fifo_order_and_remove(void **state)
{
    (void)state;
    struct passdb_slots s;
    struct passdb_fifo q;
    assert_int_equal(passdb_slots_init(&s, 4), 0);
    passdb_fifo_init(&q);
    int a = passdb_slots_take(&s), b = passdb_slots_take(&s), c = passdb_slots_take(&s);
    assert_true(a != NONE && b != NONE && c != NONE && a != b && b != c && a != c);
    passdb_fifo_push(&s, &q, a);
    passdb_fifo_push(&s, &q, b);
    passdb_fifo_push(&s, &q, c);
    assert_int_equal(passdb_fifo_next(&s, a), b);
    /* Out of the middle: the others keep their order. */
    passdb_fifo_remove(&s, &q, b);
    assert_int_equal(passdb_fifo_next(&s, a), c);
    assert_int_equal(passdb_fifo_pop(&s, &q), a);
    assert_int_equal(passdb_fifo_pop(&s, &q), c);
    assert_int_equal(passdb_fifo_pop(&s, &q), NONE);
    assert_int_equal(q.tail, NONE);
    assert_int_equal(s.in_use, 3);
    passdb_slots_fini(&s);
}

static void test_slots_run_out_and_come_back(void **state)
{
    (void)state;
    struct passdb_slots s;
    assert_int_equal(passdb_slots_init(&s, 2), 0);
    int a = passdb_slots_take(&s);
    assert_int_not_equal(passdb_slots_take(&s), NONE);
    assert_int_equal(passdb_slots_take(&s), NONE);
    passdb_slots_put(&s, a);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(passdb_slots_take(&s), a);
    passdb_slots_fini(&s);
}

static void test_admit(void **state)
{
    (void)state;
    struct passdb_slots s;
    struct passdb_ldap_answer ans;
    char longname[AUTH_USER_MAX + 1];
    memset(longname, 'u', AUTH_USER_MAX);
    longname[AUTH_USER_MAX] = '\0';
    assert_int_equal(passdb_slots_init(&s, 1), 0);

    assert_int_equal(passdb_slots_admit(&s, &ldap_rules, "", "pw", &ans), NONE);
    assert_string_equal(ans.reason, "empty-user");
    assert_int_equal(ans.status, AUTH_FAIL);
    assert_int_equal(passdb_slots_admit(&s, &ldap_rules, "bob", "", &ans), NONE);
    assert_string_equal(ans.reason, "empty-password");
    assert_int_equal(passdb_slots_admit(&s, &ldap_rules, longname, "pw", &ans), NONE);
    assert_string_equal(ans.reason, "too-long");
    /* A newline is refused only where the protocol ends a field at one. */
    assert_int_equal(passdb_slots_admit(&s, &authlib_rules, "bob", "p\nw", &ans), NONE);
    assert_string_equal(ans.reason, "bad-password");
    assert_int_equal(s.in_use, 0);

    int i = passdb_slots_admit(&s, &ldap_rules, "bob", "p\nw", &ans);
    assert_int_not_equal(i, NONE);
    assert_int_equal(passdb_slots_admit(&s, &ldap_rules, "bob", "pw", &ans), NONE);
    assert_int_equal(ans.status, AUTH_TEMPFAIL);
    assert_int_equal(ans.outage, 1);
    assert_string_equal(ans.reason, "ldap-busy");
    assert_string_equal(ans.message, "1 LDAP lookups already waiting");
    passdb_slots_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order_and_remove),
        cmocka_unit_test(test_slots_run_out_and_come_back),
        cmocka_unit_test(test_admit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

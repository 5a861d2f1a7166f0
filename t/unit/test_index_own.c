/*
 * The index absorbs fastpop's own changes to cur/ (shm/index_sync.h,
 * shm/index_own.h): new/ moved in at login, Seen renames, QUIT's unlinks
 * are recorded, so the next login lists no cur/; another program's change
 * to cur/ is still seen, at the next login, or (when it shares the mtime
 * of one of ours) by the first login index_recheck after our change.
 * Real maildirs; a "same tick" is made by setting cur/'s mtime back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "maildir/expunge.h"
#include "maildir/legacy.h"
#include "shm/index.h"
#include "shm/index_own.h"
#include "shm/index_sync.h"
#include "t/unit/helper_maildir.h"

struct fixture {
    char dir[PATH_MAX];
    char root[PATH_MAX + 16];
    char env[PATH_MAX + 16];
    struct mbindex *ix;
    time_t past;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    if (tmd_make(f.dir, 0) == -1)
        return -1;
    snprintf(f.root, sizeof(f.root), "%s/Maildir", f.dir);
    snprintf(f.env, sizeof(f.env), "%s/index", f.dir);
    if (mbindex_open(f.env, 0, &f.ix) != 0)
        return -1;
    char sub[PATH_MAX + 32];
    mkdir(f.root, 0700);
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", f.root, i == 0 ? "cur" : i == 1 ? "new" : "tmp");
        mkdir(sub, 0700);
    }
    f.past = time(NULL) - 100000;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mbindex_close(f->ix);
    return tmd_remove(f->dir);
}

static void put(struct fixture *f, const char *rel, const char *data)
{
    assert_int_equal(tmd_write(f->root, rel, data, strlen(data)), 0);
}

static void age_dirs(struct fixture *f)
{
    assert_int_equal(tmd_set_mtime(f->root, "new", f->past++), 0);
    assert_int_equal(tmd_set_mtime(f->root, "cur", f->past++), 0);
}

static struct maildir *sync_at(struct fixture *f, time_t now, struct index_sync_result *r)
{
    struct maildir *md;
    assert_int_equal(index_sync(f->ix, f->root, now, &md, r), 0);
    assert_int_equal(r->index_error, 0);
    return md;
}

static struct maildir *sync_ok(struct fixture *f, struct index_sync_result *r)
{
    return sync_at(f, time(NULL), r);
}

/* The list a scan from scratch gives: what every login must serve. */
static struct maildir *truth(struct fixture *f)
{
    struct maildir *md;
    struct index_sync_result r;
    assert_int_equal(index_sync(NULL, f->root, time(NULL), &md, &r), 0);
    return md;
}

static void assert_same_list(const struct maildir *a, const struct maildir *b)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->total_size, b->total_size);
    for (size_t i = 0; i < a->count; i++) {
        size_t la, lb;
        const char *ua = maildir_msg_uidl(a, i, &la);
        const char *ub = maildir_msg_uidl(b, i, &lb);
        assert_string_equal(maildir_msg_name(a, i), maildir_msg_name(b, i));
        assert_int_equal(la, lb);
        assert_memory_equal(ua, ub, la);
        assert_int_equal(a->msgs[i].size, b->msgs[i].size);
    }
}

static void assert_serves_truth(struct fixture *f, const struct maildir *md)
{
    struct maildir *t = truth(f);
    assert_same_list(t, md);
    maildir_free(t);
}

static void stat_cur(struct fixture *f, struct stat *st)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/cur", f->root);
    assert_int_equal(stat(p, st), 0);
}

/* Another program's change in the same mtime tick as ours: cur/ keeps the mtime st had. */
static void same_tick(struct fixture *f, const struct stat *st)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/cur", f->root);
    struct timespec ts[2] = { st->st_atim, st->st_mtim };
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

/* Past one clock tick of any file system with sub-second mtimes (100 Hz at worst). */
static void next_tick(void)
{
    struct timespec d = { 0, 20 * 1000 * 1000 };
    nanosleep(&d, NULL);
}

static void other_rename(struct fixture *f, const char *from, const char *to)
{
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof(a), "%s/cur/%s", f->root, from);
    snprintf(b, sizeof(b), "%s/cur/%s", f->root, to);
    assert_int_equal(rename(a, b), 0);
}

static void other_unlink(struct fixture *f, const char *name)
{
    char a[PATH_MAX + 64];
    snprintf(a, sizeof(a), "%s/cur/%s", f->root, name);
    assert_int_equal(unlink(a), 0);
}

static int cur_trust(struct fixture *f)
{
    struct index_head h;
    assert_int_equal(mbindex_get_head(f->ix, f->root, &h), 0);
    return (int)h.cur_dir.trust;
}

/* A mailbox of four messages, listed once long after its last change: verified. */
static void cold(struct fixture *f)
{
    struct index_sync_result r;
    put(f, "cur/1700000001.M1P1.h:2,S", "a\n");
    put(f, "cur/1700000002.M2P2.h,W=99:2,", "b\n");
    put(f, "cur/1700000003.a name with spaces:2,S", "c\n");
    put(f, "cur/1700000004.M4P4.h:2,", "dd\n");
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    assert_true(r.read_cur);
    assert_int_equal(cur_trust(f), INDEX_VERIFIED);
}

/* Deliveries between polls: new/ is read, cur/ never listed again. */
static void test_moves_absorbed(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    cold(f);
    for (int i = 0; i < 5; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "new/17000001%02d.M%dP9.h", i, i);
        put(f, rel, "new mail\n");
        struct maildir *md = sync_ok(f, &r);
        assert_true(r.read_new);
        assert_false(r.read_cur);
        assert_int_equal(r.moved, 1);
        assert_int_equal(md->count, 5 + (size_t)i);
        assert_serves_truth(f, md);
        maildir_free(md);
        assert_int_equal(cur_trust(f), INDEX_OURS);
        /* The next poll, nothing delivered: new/ is looked at again, cur/ is not. */
        md = sync_ok(f, &r);
        assert_false(r.read_cur);
        assert_serves_truth(f, md);
        maildir_free(md);
    }
    /* A lazy login on it is warm once new/ is settled. */
    age_dirs(f);
    maildir_free(sync_ok(f, &r)); /* (aging is a change to cur/ as well: one listing) */
    assert_true(r.read_cur);
}

/* Another program's rename and unlink in cur/, a tick after ours: the next login sees them. */
static void test_foreign_change_after_ours_seen(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    cold(f);
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    maildir_free(sync_ok(f, &r));
    assert_false(r.read_cur);
    next_tick();
    other_rename(f, "1700000002.M2P2.h,W=99:2,", "1700000002.M2P2.h,W=99:2,RS");
    other_unlink(f, "1700000004.M4P4.h:2,");
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_int_equal(md->count, 4);
    assert_serves_truth(f, md);
    maildir_free(md);
}

/*
 * The same, but in the very tick of our own change (cur/'s mtime set back
 * to ours): seen by the first login index_recheck after our change; at
 * once with index_recheck 0.
 */
static void test_foreign_change_same_tick_seen_by_recheck(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct stat ours;
    cold(f);
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    time_t changed = time(NULL);
    maildir_free(sync_at(f, changed, &r));
    stat_cur(f, &ours);
    other_unlink(f, "1700000004.M4P4.h:2,");
    put(f, "cur/1700000200.M7P7.h:2,", "restored\n");
    same_tick(f, &ours);
    struct maildir *md = sync_at(f, changed + INDEX_RECHECK_DEFAULT, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);

    /* index_recheck 0: our own changes are never taken on trust. */
    mbindex_set_recheck(f->ix, 0);
    put(f, "new/1700000300.M8P8.h", "more mail\n");
    maildir_free(sync_ok(f, &r));
    stat_cur(f, &ours);
    other_unlink(f, "1700000001.M1P1.h:2,S");
    same_tick(f, &ours);
    md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);
}

/* A session as the worker runs it: login, Seen rename, DELE + QUIT, then the record. */
struct session {
    struct index_head head;
    struct maildir *md;
    struct index_own own;
    int curfd;
};

static void login(struct fixture *f, struct session *s)
{
    struct index_sync_result r;
    memset(s, 0, sizeof(*s));
    assert_int_equal(index_sync_lazy(f->ix, f->root, time(NULL), &s->head, &s->md, &r), 0);
    if (s->md == NULL)
        assert_int_equal(index_load(f->ix, f->root, &s->head, &s->md), 0);
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/cur", f->root);
    s->curfd = open(p, O_RDONLY | O_DIRECTORY);
    assert_true(s->curfd >= 0);
    index_own_start(&s->own, &s->head);
}

static size_t find(const struct maildir *md, const char *unique)
{
    for (size_t i = 0; i < md->count; i++) {
        if (strncmp(maildir_msg_name(md, i), unique, strlen(unique)) == 0)
            return i;
    }
    fail_msg("%s not in the list", unique);
    return 0;
}

static void seen(struct fixture *f, struct session *s, const char *unique)
{
    char renamed[NAME_MAX + 1];
    size_t i = find(s->md, unique);
    index_own_before(&s->own, f->ix, f->root, s->curfd, 0);
    assert_int_equal(maildir_add_flag(s->curfd, maildir_msg_name(s->md, i), 'S', renamed,
                                      sizeof(renamed)), 0);
    index_own_after(&s->own, f->ix, s->curfd);
    assert_int_equal(maildir_msg_rename(s->md, i, renamed), 0);
}

static void dele_quit(struct fixture *f, struct session *s, const char *unique)
{
    int removed;
    size_t i = find(s->md, unique);
    s->md->msgs[i].deleted = 1;
    index_own_before(&s->own, f->ix, f->root, s->curfd, 1);
    assert_int_equal(maildir_expunge(s->curfd, maildir_msg_name(s->md, i), &removed), 0);
    if (removed != 1)
        index_own_foreign(&s->own);
    index_own_after(&s->own, f->ix, s->curfd);
}

static void end(struct fixture *f, struct session *s, int updated)
{
    assert_int_equal(index_own_record(&s->own, f->ix, f->root, s->md, updated), 0);
    maildir_free(s->md);
    close(s->curfd);
}

static void test_session_changes_recorded(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct session s;
    /* A legacy UIDL must come through the record's rewrite unchanged. */
    put(f, LEGACY_COURIER_FILE, "/2 9 777\n1700000001.M1P1.h:2, 3 5:777\n");
    cold(f);
    age_dirs(f);
    maildir_free(sync_ok(f, &r)); /* settled and verified: a warm lazy login next */

    login(f, &s);
    seen(f, &s, "1700000004.M4P4.h");
    dele_quit(f, &s, "1700000002.M2P2.h");
    end(f, &s, 1);
    assert_int_equal(cur_trust(f), INDEX_OURS);
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.warm);
    assert_int_equal(md->count, 3);
    assert_string_equal(maildir_msg_name(md, find(md, "1700000004")), "1700000004.M4P4.h:2,S");
    assert_serves_truth(f, md);
    size_t len;
    assert_memory_equal(maildir_msg_uidl(md, 0, &len), "UID5-777", 8);
    maildir_free(md);

    /* Two deliveries; a session reads one (Seen), one DELEs and reads, then drops. */
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    put(f, "new/1700000101.M8P8.h", "more mail\n");
    login(f, &s);
    seen(f, &s, "1700000100.M9P9.h");
    end(f, &s, 0);
    login(f, &s);
    s.md->msgs[0].deleted = 1; /* DELE, then the connection drops: nothing is deleted */
    seen(f, &s, "1700000101.M8P8.h");
    assert_true(s.own.changes > 0);
    end(f, &s, 0);
    md = sync_ok(f, &r);
    assert_false(r.read_cur);
    assert_int_equal(md->count, 5);
    assert_string_equal(maildir_msg_name(md, find(md, "1700000101")), "1700000101.M8P8.h:2,S");
    assert_serves_truth(f, md);
    maildir_free(md);
}

/* Another program at work during a session: nothing it did is hidden. */
static void test_session_sees_foreign_change(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct session s;
    struct stat ours;
    cold(f);
    age_dirs(f);
    maildir_free(sync_ok(f, &r));

    /* Changed between the login and our rename: the bracket sees it. */
    login(f, &s);
    next_tick();
    other_unlink(f, "1700000001.M1P1.h:2,S");
    seen(f, &s, "1700000004.M4P4.h");
    end(f, &s, 0);
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);

    /*
     * Hidden in the tick of our own change, then found missing by a
     * session (a RETR of it): the record goes stale.
     */
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    maildir_free(sync_ok(f, &r));
    assert_int_equal(cur_trust(f), INDEX_OURS);
    stat_cur(f, &ours);
    other_rename(f, "1700000002.M2P2.h,W=99:2,", "1700000002.M2P2.h,W=99:2,T");
    same_tick(f, &ours);
    login(f, &s);
    index_own_foreign(&s.own); /* what mailbox_open_message does on ENOENT */
    end(f, &s, 0);
    assert_int_equal(cur_trust(f), INDEX_STALE);
    md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);

    /* An unlink that finds the message gone already: someone else deleted it. */
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    login(f, &s);
    stat_cur(f, &ours);
    other_unlink(f, "1700000003.a name with spaces:2,S");
    same_tick(f, &ours);
    dele_quit(f, &s, "1700000003.a name with spaces");
    end(f, &s, 1);
    md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);
}

/*
 * An unlink less than a second after the stamp of our own change may keep
 * cur/'s mtime: the record is stored stale before it, so a session that
 * dies right after the unlink leaves no record that still lists the message.
 */
static void test_unlink_soon_after_own_change_stores_stale_first(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct session s;
    struct stat ours;
    cold(f);
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    maildir_free(sync_ok(f, &r));
    assert_int_equal(cur_trust(f), INDEX_OURS);
    stat_cur(f, &ours);
    login(f, &s);
    dele_quit(f, &s, "1700000100.M9P9.h");
    assert_int_equal(cur_trust(f), INDEX_STALE);
    same_tick(f, &ours);
    /* The worker died here: no index_own_record. */
    maildir_free(s.md);
    close(s.curfd);
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_int_equal(md->count, 4);
    assert_serves_truth(f, md);
    maildir_free(md);

    /* A settled stamp needs no such care: the unlink moves cur/'s mtime past it. */
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    login(f, &s);
    dele_quit(f, &s, "1700000001.M1P1.h");
    assert_int_equal(cur_trust(f), INDEX_VERIFIED);
    end(f, &s, 1);
    md = sync_ok(f, &r);
    assert_false(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);
}

/*
 * The stale record stored before such an unlink is a marker without
 * messages (a few hundred bytes, not the list); the session's end stores
 * the list: trusted, or stale when trust was lost after the marker, so the
 * next listing still knows the sizes.
 */
static void test_stale_first_is_a_marker_then_the_list(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct session s;
    struct index_head h;
    cold(f);
    put(f, "new/1700000100.M9P9.h", "new mail\n");
    maildir_free(sync_ok(f, &r));
    login(f, &s);
    dele_quit(f, &s, "1700000100.M9P9.h");
    assert_int_equal(mbindex_get_head(f->ix, f->root, &h), 0);
    assert_int_equal(h.cur_dir.trust, INDEX_STALE);
    assert_int_equal(h.count, 0);
    end(f, &s, 1);
    struct maildir *want = truth(f);
    assert_int_equal(mbindex_get_head(f->ix, f->root, &h), 0);
    assert_int_not_equal(h.cur_dir.trust, INDEX_STALE);
    assert_int_equal(h.count, want->count);
    maildir_free(want);

    put(f, "new/1700000101.M8P8.h", "more mail\n");
    maildir_free(sync_ok(f, &r));
    login(f, &s);
    dele_quit(f, &s, "1700000101.M8P8.h");
    index_own_foreign(&s.own); /* another program's rename seen after the marker */
    end(f, &s, 1);
    want = truth(f);
    assert_int_equal(mbindex_get_head(f->ix, f->root, &h), 0);
    assert_int_equal(h.cur_dir.trust, INDEX_STALE);
    assert_int_equal(h.count, want->count);
    assert_int_equal(h.total_size, want->total_size);
    maildir_free(want);
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.read_cur);
    assert_serves_truth(f, md);
    maildir_free(md);
}

static void test_stamp_rules(void **state)
{
    (void)state;
    struct stat st = { 0 };
    struct index_dirstamp s;
    st.st_ino = 9;
    st.st_mtim.tv_sec = 1000;
    st.st_mtim.tv_nsec = 5;
    index_own_stamp(&s, &st, 990, 42);
    assert_int_equal(s.trust, INDEX_OURS);
    assert_true(index_cur_trusted(&s, &st, 1000, 3600, 42));
    assert_true(index_cur_trusted(&s, &st, 990 + 3599, 3600, 42));
    assert_false(index_cur_trusted(&s, &st, 990 + 3600, 3600, 42)); /* recheck due */
    assert_false(index_cur_trusted(&s, &st, 989, 3600, 42));        /* clock went back */
    assert_false(index_cur_trusted(&s, &st, 1000, 3600, 43));       /* another boot */
    assert_false(index_cur_trusted(&s, &st, 1000, 0, 42));          /* index_recheck 0 */
    st.st_mtim.tv_nsec = 6;
    assert_false(index_cur_trusted(&s, &st, 1000, 3600, 42));       /* cur/ changed */
    /* Whole-second mtimes, or no boot id: own changes are not taken on trust. */
    st.st_mtim.tv_nsec = 0;
    index_own_stamp(&s, &st, 990, 42);
    assert_int_equal(s.trust, INDEX_STALE);
    st.st_mtim.tv_nsec = 5;
    index_own_stamp(&s, &st, 990, 0);
    assert_int_equal(s.trust, INDEX_STALE);
    /* Settled: a whole second after the mtime. */
    struct timespec at = { 1001, 4 };
    index_own_stamp(&s, &st, 990, 42);
    assert_false(index_stamp_settled(&s, &at));
    at.tv_nsec = 5;
    assert_true(index_stamp_settled(&s, &at));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stamp_rules),
        cmocka_unit_test_setup_teardown(test_moves_absorbed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_change_after_ours_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_change_same_tick_seen_by_recheck, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_changes_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_sees_foreign_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_first_is_a_marker_then_the_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_soon_after_own_change_stores_stale_first,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

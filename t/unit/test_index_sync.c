/*
 * Sync decisions on real maildirs: cold, unchanged (warm), changed, the
 * same-second race, our own moves, a lost or corrupt index, legacy UIDLs.
 * Directory mtimes are set by hand to stand for the passage of time.
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

#include "shm/index.h"
#include "maildir/legacy.h"
#include "shm/index_sync.h"
#include "t/unit/helper_maildir.h"

struct fixture {
    char dir[PATH_MAX];   /* holds the maildir and the env */
    char root[PATH_MAX + 16];
    char env[PATH_MAX + 16];
    struct mbindex *ix;
    time_t past;          /* a distinct old mtime per "change" */
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
    /* The maildir exists except in the test of a first login. */
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

/* Make both directories look untouched for a while, each with a new mtime. */
static void age_dirs(struct fixture *f)
{
    assert_int_equal(tmd_set_mtime(f->root, "new", f->past++), 0);
    assert_int_equal(tmd_set_mtime(f->root, "cur", f->past++), 0);
}

static struct maildir *sync_ok(struct fixture *f, struct index_sync_result *res)
{
    struct maildir *md;
    assert_int_equal(index_sync(f->ix, f->root, time(NULL), &md, res), 0);
    assert_int_equal(res->index_error, 0);
    return md;
}

static void put(struct fixture *f, const char *rel, const char *data)
{
    assert_int_equal(tmd_write(f->root, rel, data, strlen(data)), 0);
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

static void test_decisions(void **state)
{
    (void)state;
    struct stat st = { 0 };
    struct index_dirstamp s;
    struct timespec at = { .tv_sec = 1000, .tv_nsec = 500 };
    st.st_ino = 9;
    st.st_mtim.tv_sec = 998;
    st.st_mtim.tv_nsec = 700;
    index_dir_stamp(&s, &st, &at, 0);
    assert_int_equal(s.trust, INDEX_VERIFIED);
    assert_true(index_dir_clean(&s, &st));
    /* Read within a second of the mtime: the same-second race. */
    st.st_mtim.tv_sec = 999;
    index_dir_stamp(&s, &st, &at, 0);
    assert_int_equal(s.trust, INDEX_STALE);
    assert_false(index_dir_clean(&s, &st));
    st.st_mtim.tv_nsec = 500;
    index_dir_stamp(&s, &st, &at, 0);
    assert_int_equal(s.trust, INDEX_VERIFIED); /* exactly one second */
    /* Changed by us: never verified. */
    st.st_mtim.tv_sec = 10;
    index_dir_stamp(&s, &st, &at, 1);
    assert_int_equal(s.trust, INDEX_STALE);
    /* Verified, then any difference in seconds, nanoseconds or inode. */
    index_dir_stamp(&s, &st, &at, 0);
    assert_true(index_dir_clean(&s, &st));
    st.st_mtim.tv_nsec++;
    assert_false(index_dir_clean(&s, &st));
    st.st_mtim.tv_nsec--;
    st.st_ino++;
    assert_false(index_dir_clean(&s, &st));
}

static void test_cold_warm_changed(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;

    /* First login: the maildir does not even exist. */
    assert_int_equal(tmd_remove(f->root), 0);
    struct maildir *md = sync_ok(f, &r);
    assert_false(r.warm);
    assert_true(r.written);
    assert_int_equal(md->count, 0);
    maildir_free(md);

    put(f, "cur/1700000001.M1P1.h:2,S", "a\n");
    put(f, "cur/1700000002.M2P2.h,W=99:2,", "b\n");
    put(f, "new/1700000003.M3P3.h", "c\nc\n");
    age_dirs(f);
    md = sync_ok(f, &r);
    assert_false(r.warm);
    assert_true(r.read_new && r.read_cur);
    assert_int_equal(r.moved, 1);
    assert_int_equal(md->count, 3);
    assert_int_equal(md->total_size, 3 + 99 + 6);
    maildir_free(md);

    /* Our own moves left both directories unverified: read once more. */
    age_dirs(f);
    md = sync_ok(f, &r);
    assert_false(r.warm);
    assert_int_equal(r.moved, 0);
    maildir_free(md);

    /* Unchanged: the index alone answers, even for a file that changed size. */
    put(f, "cur/1700000001.M1P1.h:2,S", "a much longer body\n");
    age_dirs(f); /* (tmd_write touched cur/'s mtime) */
    md = sync_ok(f, &r);
    assert_false(r.warm);
    struct maildir *again = sync_ok(f, &r);
    assert_true(r.warm);
    assert_false(r.read_new || r.read_cur || r.written);
    assert_same_list(md, again);
    /* Size known by unique name: never counted again (files do not change). */
    assert_int_equal(again->msgs[0].size, 3);
    maildir_free(md);
    maildir_free(again);

    /* Another program renames a message (a flag) and delivers to new/. */
    char from[2 * PATH_MAX], to[2 * PATH_MAX];
    snprintf(from, sizeof(from), "%s/cur/1700000002.M2P2.h,W=99:2,", f->root);
    snprintf(to, sizeof(to), "%s/cur/1700000002.M2P2.h,W=99:2,RS", f->root);
    assert_int_equal(rename(from, to), 0);
    put(f, "new/1700000004.M4P4.h", "d\n");
    age_dirs(f);
    md = sync_ok(f, &r);
    assert_true(r.read_new && r.read_cur);
    assert_int_equal(md->count, 4);
    assert_string_equal(maildir_msg_name(md, 1), "1700000002.M2P2.h,W=99:2,RS");
    assert_string_equal(maildir_msg_name(md, 3), "1700000004.M4P4.h:2,");
    maildir_free(md);
}

/* A delivery within the same second as the read is never missed. */
static void test_same_second(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;

    put(f, "new/1700000001.M1P1.h", "a\n");
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    /* new/ changed "now": read, and stays unverified while it is this recent. */
    put(f, "new/1700000002.M2P2.h", "b\n");
    struct maildir *md = sync_ok(f, &r);
    assert_true(r.read_new);
    assert_false(r.read_cur);
    assert_int_equal(r.moved, 1);
    assert_int_equal(md->count, 2);
    maildir_free(md);
    md = sync_ok(f, &r);
    assert_false(r.warm);
    assert_true(r.read_new);
    maildir_free(md);
}

/* Deleting the env, or no index at all, changes no UIDL and no order. */
static void test_lost_index(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;

    put(f, "cur/1700000001.M1P1.h:2,S", "a\n");
    put(f, "cur/1700000002.a name with spaces:2,", "b\n");
    put(f, "new/1700000003.M3P3.h", "c\n");
    const char *list = "/2 9 777\n1700000001.M1P1.h:2, 3 5:777\n";
    put(f, LEGACY_COURIER_FILE, list);
    age_dirs(f);
    struct maildir *first = sync_ok(f, &r);
    size_t len;
    assert_memory_equal(maildir_msg_uidl(first, 0, &len), "UID5-777", 8);

    mbindex_close(f->ix);
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "%s/data.mdb", f->env);
    assert_int_equal(unlink(cmd), 0);
    assert_int_equal(mbindex_open(f->env, 0, &f->ix), 0);
    struct maildir *rebuilt = sync_ok(f, &r);
    assert_false(r.warm);
    assert_same_list(first, rebuilt);

    struct maildir *plain;
    assert_int_equal(index_sync(NULL, f->root, time(NULL), &plain, &r), 0);
    assert_same_list(first, plain);
    maildir_free(first);
    maildir_free(rebuilt);
    maildir_free(plain);
}

/*
 * A warm lazy login reads only the head; the messages load later, from the
 * same record only; anything that is not warm is an ordinary sync.
 */
static void test_lazy_head_then_load(void **state)
{
    struct fixture *f = *state;
    struct index_sync_result r;
    struct index_head head;
    struct maildir *md;

    put(f, "cur/1700000001.M1P1.h:2,S", "a\n");
    put(f, "cur/1700000002.M2P2.h,W=99:2,", "b\n");
    put(f, "new/1700000003.M3P3.h", "c\nc\n");
    age_dirs(f);
    /* Not warm (first login, then our own moves): a list, and head describes it. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(index_sync_lazy(f->ix, f->root, time(NULL), &head, &md, &r), 0);
        assert_false(r.warm);
        assert_non_null(md);
        assert_int_equal(head.count, 3);
        assert_int_equal(head.total_size, 3 + 99 + 6);
        maildir_free(md);
        age_dirs(f);
    }
    struct maildir *eager = sync_ok(f, &r);
    assert_false(r.warm);   /* the aged stamps are stored verified now */

    assert_int_equal(index_sync_lazy(f->ix, f->root, time(NULL), &head, &md, &r), 0);
    assert_true(r.warm);
    assert_null(md);
    assert_int_equal(head.count, 3);
    assert_int_equal(head.total_size, 3 + 99 + 6);
    assert_int_equal(index_load(f->ix, f->root, &head, &md), 0);
    assert_same_list(eager, md);
    maildir_free(md);
    /* Loading twice from the same head is fine (nothing was written). */
    assert_int_equal(index_load(f->ix, f->root, &head, &md), 0);
    maildir_free(md);

    /* The record written again meanwhile (another sync): not that list any more. */
    struct index_head old = head;
    put(f, "new/1700000004.M4P4.h", "d\n");
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    assert_true(r.written);
    assert_int_equal(index_load(f->ix, f->root, &old, &md), ESTALE);
    /* Written again with the very same messages: still another record. */
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    assert_int_equal(index_sync_lazy(f->ix, f->root, time(NULL), &head, &md, &r), 0);
    assert_true(r.warm);
    old = head;
    age_dirs(f);
    maildir_free(sync_ok(f, &r));
    assert_true(r.written);
    assert_int_equal(index_load(f->ix, f->root, &old, &md), ESTALE);
    /* The record removed: ESTALE too. */
    assert_int_equal(mbindex_del(f->ix, f->root), 0);
    assert_int_equal(index_load(f->ix, f->root, &old, &md), ESTALE);
    /* No index at all: never warm, always a list. */
    assert_int_equal(index_sync_lazy(NULL, f->root, time(NULL), &head, &md, &r), 0);
    assert_false(r.warm);
    assert_int_equal(head.count, 4);
    maildir_free(md);
    maildir_free(eager);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test_setup_teardown(test_cold_warm_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_head_then_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

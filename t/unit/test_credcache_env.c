/*
 * shm/credcache environments: the helper's verifiers (private) and the
 * workers' login list (shared, no verifier in it), sweep, flush, forget,
 * modes, and the previous format's files (never read, deleted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "shm/credcache.h"

static const struct credcache_ttl TTL = { 3600, 300, 86400 };
static const time_t NOW = 1700000000;

static void make_ok(struct credcache_record *rec, const char *pw, time_t when)
{
    assert_int_equal(credcache_record_init(rec), 0);
    assert_int_equal(credcache_record_ok(rec, pw, "alice", "/var/mail/alice", NULL, when), 0);
}

/* A fresh state_dir per test, with the directories the master and the helper make. */
static char *make_state_dir(void)
{
    char *dir = strdup("/tmp/fastpop-credcache-XXXXXX");
    char path[512];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(credcache_prepare_dir(dir, getuid(), getgid()), 0);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, CREDCACHE_DIR, CREDCACHE_PRIVATE_DIR);
    assert_int_equal(mkdir(path, 0700), 0);
    return dir;
}

static void remove_state_dir(char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void assert_closed_to_others(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (geteuid() != 0)
        assert_int_equal(st.st_mode & 077, 0);
    else
        assert_int_equal(st.st_mode & 007, 0);
}

static void test_env_put_get_flush(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w, *lw, *lr;
    struct credcache_record rec, got;
    struct credcache_login login, lgot;
    int found;
    size_t removed;
    (void)state;

    /* Readers never create anything: no env yet is ENOENT. */
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 0, &lr), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(credcache_exists(dir, CREDCACHE_SHARED), 0);
    assert_int_equal(credcache_exists(dir, CREDCACHE_PRIVATE), 0);

    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 0, &lr), 0);
    assert_int_equal(credcache_exists(dir, CREDCACHE_SHARED), 1);
    assert_int_equal(credcache_exists(dir, CREDCACHE_PRIVATE), 1);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_false(found);

    make_ok(&rec, "secret", NOW);
    assert_int_equal(credcache_put(w, "alice", &rec), 0);
    assert_int_equal(credcache_put(w, "bob", &rec), 0);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_judge(&got, "secret", NOW + 1, &TTL), CREDCACHE_HIT_OK);
    assert_true(got.generation == rec.generation);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    assert_int_equal(credcache_put_login(lw, "alice", &login), 0);
    /* The reader sees the writer's commit at its next lookup. */
    assert_int_equal(credcache_get_login(lr, "alice", &lgot, &found), 0);
    assert_true(found);
    assert_true(lgot.generation == rec.generation);
    assert_string_equal(lgot.maildir, "/var/mail/alice");

    /* A get or put of the other kind is refused, never misread. */
    assert_int_equal(credcache_get(lr, "alice", &got, &found), -1);
    assert_int_equal(errno, EINVAL);
    assert_false(found);
    assert_int_equal(credcache_put(lw, "alice", &rec), -1);
    assert_int_equal(credcache_get_login(w, "alice", &lgot, &found), -1);
    assert_int_equal(credcache_put_login(w, "alice", &login), -1);

    /* Readers cannot write; names must fit. */
    assert_int_equal(credcache_put_login(lr, "carol", &login), -1);
    assert_int_equal(credcache_get(w, "", &got, &found), -1);
    char longname[CREDCACHE_KEY_MAX + 1];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(credcache_put(w, longname, &rec), -1);

    assert_int_equal(credcache_flush(w, "alice", &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(credcache_flush(w, "alice", &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get(w, "bob", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_flush(w, NULL, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(credcache_get(w, "bob", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_flush(lw, NULL, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(credcache_get_login(lr, "alice", &lgot, &found), 0);
    assert_false(found);

    /* Unprivileged, nothing is open to the group or others; the verifiers never. */
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/%s", dir, CREDCACHE_DIR, CREDCACHE_SHARED_FILE);
    assert_closed_to_others(path);
    snprintf(path, sizeof(path), "%s/%s/%s-lock", dir, CREDCACHE_DIR, CREDCACHE_SHARED_FILE);
    assert_closed_to_others(path);
    snprintf(path, sizeof(path), "%s/%s/%s/%s", dir, CREDCACHE_DIR, CREDCACHE_PRIVATE_DIR,
             CREDCACHE_PRIVATE_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    snprintf(path, sizeof(path), "%s/%s/%s/%s-lock", dir, CREDCACHE_DIR, CREDCACHE_PRIVATE_DIR,
             CREDCACHE_PRIVATE_FILE);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);

    credcache_close(lr);
    credcache_close(lw);
    credcache_close(w);
    remove_state_dir(dir);
}

/* A private env in a directory open to others is refused (EPERM), not used. */
static void test_private_dir_must_be_private(void **state)
{
    char *dir = make_state_dir();
    char path[512];
    struct credcache *w;
    (void)state;

    snprintf(path, sizeof(path), "%s/%s/%s", dir, CREDCACHE_DIR, CREDCACHE_PRIVATE_DIR);
    assert_int_equal(chmod(path, 0750), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), -1);
    assert_int_equal(errno, EPERM);
    remove_state_dir(dir);
}

/*
 * Every record the helper's flow puts in the login list decodes as a
 * login-list record of exactly its fields, and the file holds none of the
 * verifier record's salt or verifiers (read back raw, like a mail-uid
 * process would).
 */
static void test_shared_file_has_no_verifier(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w, *lw;
    struct credcache_record rec[3];
    struct credcache_login login;
    const char *names[] = { "alice", "ALICE", "bob" };
    (void)state;

    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    for (int i = 0; i < 3; i++) {
        make_ok(&rec[i], i == 2 ? "bob-pw" : "alice-pw", NOW);
        assert_int_equal(credcache_record_fail(&rec[i], "guess", NOW), 0);
        assert_int_equal(credcache_put(w, names[i], &rec[i]), 0);
        assert_int_equal(credcache_login_of(&rec[i], &login), 0);
        assert_int_equal(credcache_put_login(lw, names[i], &login), 0);
    }
    credcache_close(lw);
    credcache_close(w);

    /* Every record, walked with LMDB itself. */
    char path[512];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val key, val;
    int count = 0;
    snprintf(path, sizeof(path), "%s/%s/%s", dir, CREDCACHE_DIR, CREDCACHE_SHARED_FILE);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, &key, &val, count ? MDB_NEXT : MDB_FIRST) == 0) {
        struct credcache_record r;
        assert_int_equal(credcache_login_decode(val.mv_data, val.mv_size, &login), 0);
        assert_int_equal(val.mv_size, 4 + 8 + 8 + 2 + strlen(login.user) + 2 +
                                          strlen(login.maildir) + 12);
        assert_int_equal(credcache_decode(val.mv_data, val.mv_size, &r), -1);
        count++;
    }
    assert_int_equal(count, 3);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);

    /* And the raw bytes of the file. */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char data[1 << 20];
    size_t n = fread(data, 1, sizeof(data), f);
    fclose(f);
    assert_true(n > 0);
    for (int i = 0; i < 3; i++) {
        assert_null(memmem(data, n, rec[i].salt, sizeof(rec[i].salt)));
        assert_null(memmem(data, n, rec[i].dk, sizeof(rec[i].dk)));
        assert_null(memmem(data, n, rec[i].neg_dk, sizeof(rec[i].neg_dk)));
    }
    remove_state_dir(dir);
}

/*
 * The previous format (version-1 verifier records in authcache/data.mdb,
 * readable by the mail group) is never read: the new envs start empty, and
 * the helper deletes the old files.
 */
static void test_old_format_is_not_read(void **state)
{
    char *dir = make_state_dir();
    char path[512];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    struct credcache_record rec, got;
    struct credcache_login lgot;
    unsigned char buf[2048];
    struct credcache *w, *lw;
    int found, removed;
    (void)state;

    /* An old record: today's verifier record with the version byte of the old one. */
    make_ok(&rec, "secret", NOW);
    long n = credcache_encode(&rec, buf, sizeof(buf));
    assert_true(n > 0);
    buf[0] = 1;
    assert_int_equal(credcache_decode(buf, (size_t)n, &got), -1);
    assert_int_equal(credcache_login_decode(buf, (size_t)n, &lgot), -1);
    snprintf(path, sizeof(path), "%s/%s", dir, CREDCACHE_DIR);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val key = { 5, (void *)"alice" }, val = { (size_t)n, buf };
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    assert_int_equal(credcache_exists(dir, CREDCACHE_SHARED), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get_login(lw, "alice", &lgot, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_remove_old_format(dir, &removed), 0);
    assert_int_equal(removed, 2);
    snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, CREDCACHE_DIR);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(credcache_remove_old_format(dir, &removed), 0);
    assert_int_equal(removed, 0);
    credcache_close(lw);
    credcache_close(w);
    remove_state_dir(dir);
}

static void test_survives_reopen_and_sweep(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w, *lw;
    struct credcache_record rec, got;
    struct credcache_login login;
    int found;
    size_t removed;
    (void)state;

    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    /* Consecutive dead entries check that the sweep's cursor deletes each one. */
    const char *names[] = { "a1", "a2", "a3", "live", "a4", "neg", "negold" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        make_ok(&rec, "pw", NOW - 100000);
        if (strcmp(names[i], "live") == 0)
            make_ok(&rec, "pw", NOW - 10);
        if (strncmp(names[i], "neg", 3) == 0) {
            assert_int_equal(credcache_record_init(&rec), 0);
            assert_int_equal(credcache_record_fail(&rec, "x", names[i][3] ? NOW - 1000 : NOW - 5),
                             0);
        }
        assert_int_equal(credcache_put(w, names[i], &rec), 0);
        if (credcache_login_of(&rec, &login) == 0)
            assert_int_equal(credcache_put_login(lw, names[i], &login), 0);
    }
    /* Stale (inside stale_ttl) for the helper, but never for the workers. */
    make_ok(&rec, "pw", NOW - 4000);
    assert_int_equal(credcache_put(w, "stale", &rec), 0);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    assert_int_equal(credcache_put_login(lw, "stale", &login), 0);
    credcache_close(lw);
    credcache_close(w);

    /* A restart keeps everything. */
    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    assert_int_equal(credcache_get(w, "a3", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_sweep(w, NOW, &TTL, &removed), 0);
    assert_int_equal(removed, 5);
    assert_int_equal(credcache_get(w, "live", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get(w, "stale", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get(w, "neg", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get(w, "a4", &got, &found), 0);
    assert_false(found);
    /* The login list keeps only what a worker may still use: "live". */
    assert_int_equal(credcache_sweep(lw, NOW, &TTL, &removed), 0);
    assert_int_equal(removed, 5);
    assert_int_equal(credcache_get_login(lw, "live", &login, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_get_login(lw, "stale", &login, &found), 0);
    assert_false(found);
    credcache_close(lw);
    credcache_close(w);
    remove_state_dir(dir);
}

/*
 * A refused account: every positive part naming it goes, under every login
 * name it was cached as, in both envs; remembered failures stay; other
 * users are untouched.
 */
static void test_forget_user(void **state)
{
    char *dir = make_state_dir();
    struct credcache *w, *lw;
    struct credcache_record rec, got;
    struct credcache_login login;
    int found;
    size_t forgotten;
    (void)state;

    assert_int_equal(credcache_open(dir, CREDCACHE_PRIVATE, 1, &w), 0);
    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    make_ok(&rec, "pw", NOW);
    assert_int_equal(credcache_put(w, "alice", &rec), 0);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    assert_int_equal(credcache_put_login(lw, "alice", &login), 0);
    assert_int_equal(credcache_put_login(lw, "ALICE", &login), 0);
    /* "ALICE" also remembers a failed password: that part is kept */
    assert_int_equal(credcache_record_fail(&rec, "wrong", NOW), 0);
    assert_int_equal(credcache_put(w, "ALICE", &rec), 0);
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_ok(&rec, "pw", "bob", "/var/mail/bob", NULL, NOW), 0);
    assert_int_equal(credcache_put(w, "bob", &rec), 0);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    assert_int_equal(credcache_put_login(lw, "bob", &login), 0);
    /* "alicia" only remembers a failure: no positive part to forget */
    assert_int_equal(credcache_record_init(&rec), 0);
    assert_int_equal(credcache_record_fail(&rec, "x", NOW), 0);
    assert_int_equal(credcache_put(w, "alicia", &rec), 0);

    assert_int_equal(credcache_forget_user(lw, "alice", &forgotten), 0);
    assert_int_equal(forgotten, 2);
    assert_int_equal(credcache_get_login(lw, "ALICE", &login, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get_login(lw, "bob", &login, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_forget_user(w, "alice", &forgotten), 0);
    assert_int_equal(forgotten, 2);
    assert_int_equal(credcache_get(w, "alice", &got, &found), 0);
    assert_false(found);
    assert_int_equal(credcache_get(w, "ALICE", &got, &found), 0);
    assert_true(found);
    assert_false(got.has_positive);
    assert_string_equal(got.user, "");
    assert_int_equal(credcache_judge(&got, "pw", NOW + 1, &TTL), CREDCACHE_MISS);
    assert_int_equal(credcache_judge(&got, "wrong", NOW + 1, &TTL), CREDCACHE_HIT_FAIL);
    assert_int_equal(credcache_get(w, "bob", &got, &found), 0);
    assert_true(found);
    assert_int_equal(credcache_judge(&got, "pw", NOW + 1, &TTL), CREDCACHE_HIT_OK);
    assert_int_equal(credcache_get(w, "alicia", &got, &found), 0);
    assert_true(found);
    /* nothing left: a second call finds nothing */
    assert_int_equal(credcache_forget_user(w, "alice", &forgotten), 0);
    assert_int_equal(forgotten, 0);
    assert_int_equal(credcache_forget_user(w, "", &forgotten), -1);
    credcache_close(lw);
    credcache_close(w);
    remove_state_dir(dir);
}

/* A reader in another process sees writes, and many writes grow the map. */
static void test_many_entries_other_process(void **state)
{
    char *dir = make_state_dir();
    struct credcache *lw;
    struct credcache_record rec;
    struct credcache_login login;
    (void)state;

    assert_int_equal(credcache_open(dir, CREDCACHE_SHARED, 1, &lw), 0);
    make_ok(&rec, "pw", NOW);
    assert_int_equal(credcache_login_of(&rec, &login), 0);
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "user%04d", i);
        assert_int_equal(credcache_put_login(lw, name, &login), 0);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct credcache *r;
        struct credcache_login got;
        int found = 0;
        if (credcache_open(dir, CREDCACHE_SHARED, 0, &r) != 0 ||
            credcache_get_login(r, "user1999", &got, &found) != 0 || !found ||
            got.generation != rec.generation)
            _exit(1);
        credcache_close(r);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    credcache_close(lw);
    remove_state_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_put_get_flush),
        cmocka_unit_test(test_private_dir_must_be_private),
        cmocka_unit_test(test_shared_file_has_no_verifier),
        cmocka_unit_test(test_old_format_is_not_read),
        cmocka_unit_test(test_survives_reopen_and_sweep),
        cmocka_unit_test(test_forget_user),
        cmocka_unit_test(test_many_entries_other_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The mailbox index record and environment: encode/decode, garbage and
 * foreign values, a map that fills up, one that may not grow (index_max_mb)
 * and one that cannot (no address space left), an unreadable environment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maildir/scan.h"
#include "shm/index.h"
#include "t/unit/helper_maildir.h"

static struct maildir *sample(size_t n)
{
    struct maildir *md = maildir_new();
    char name[64];
    assert_non_null(md);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%zu.M%zuP1.host:2,%s", 1700000000 + i, i, i % 2 ? "S" : "");
        assert_int_equal(maildir_add(md, name, i * 10 + 1), 0);
    }
    return md;
}

static void assert_same(const struct maildir *a, const struct maildir *b)
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
        assert_int_equal(a->msgs[i].unique_len, b->msgs[i].unique_len);
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct index_entry e = { .tmp_cleaned = 1234, .legacy = 2 };
    e.md = sample(50);
    e.new_dir = (struct index_dirstamp){ .sec = 1, .nsec = 2, .ino = 3, .trust = INDEX_VERIFIED };
    e.cur_dir = (struct index_dirstamp){ .sec = 4, .nsec = 5, .ino = 6, .trust = INDEX_STALE };
    /* A long legacy UIDL and a rename leave extra strings: both must survive. */
    char longuidl[200];
    memset(longuidl, 'u', sizeof(longuidl));
    assert_int_equal(maildir_set_uidl(e.md, 3, longuidl, sizeof(longuidl)), 0);
    assert_int_equal(maildir_msg_rename(e.md, 4, "1700000004.M4P1.host:2,RS"), 0);

    void *buf;
    size_t len;
    assert_int_equal(index_encode("/var/mail/a", &e, &buf, &len), 0);
    struct index_entry d = { 0 };
    assert_int_equal(index_decode(buf, len, "/var/mail/a", &d), 0);
    assert_same(e.md, d.md);
    assert_int_equal(d.tmp_cleaned, 1234);
    assert_int_equal(d.legacy, 2);
    assert_int_equal(d.new_dir.trust, INDEX_VERIFIED);
    assert_int_equal(d.cur_dir.ino, 6);
    maildir_free(d.md);

    /* The same key for another path (a hash collision) reads as a miss. */
    assert_int_equal(index_decode(buf, len, "/var/mail/b", &d), ESTALE);
    /* Truncated, or any byte of the header changed: never decoded. */
    for (size_t cut = 0; cut < len; cut += 7)
        assert_int_equal(index_decode(buf, cut, "/var/mail/a", &d), EINVAL);
    for (size_t i = 0; i < 64; i++) {
        unsigned char *p = buf;
        p[i] ^= 0x5a;
        int rc = index_decode(buf, len, "/var/mail/a", &d);
        assert_true(rc == EINVAL || rc == ESTALE || rc == MDB_NOTFOUND ||
                    (rc == 0 && (maildir_free(d.md), 1)));
        p[i] ^= 0x5a;
    }
    /* A message offset pointing outside the strings. */
    unsigned char *msg0 = (unsigned char *)buf + len - e.md->strings_len - 50 * 32;
    memset(msg0 + 16, 0xff, 4);
    assert_int_equal(index_decode(buf, len, "/var/mail/a", &d), EINVAL);
    free(buf);

    /* Random garbage. */
    unsigned char junk[4096];
    srand(7);
    for (int round = 0; round < 100; round++) {
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (unsigned char)rand();
        assert_int_equal(index_decode(junk, (size_t)(rand() % (int)sizeof(junk)), "/x", &d),
                         EINVAL);
    }
    maildir_free(e.md);
}

/* The head alone: count, size, stamps and a serial new at every encode. */
static void test_head(void **state)
{
    (void)state;
    struct index_entry e = { .tmp_cleaned = 77, .legacy = 1 };
    e.md = sample(20);
    e.cur_dir = (struct index_dirstamp){ .sec = 4, .nsec = 5, .ino = 6, .trust = INDEX_VERIFIED };

    void *a, *b;
    size_t alen, blen;
    assert_int_equal(index_encode("/m", &e, &a, &alen), 0);
    assert_int_equal(index_encode("/m", &e, &b, &blen), 0);
    struct index_head ha, hb;
    assert_int_equal(index_decode_head(a, alen, "/m", &ha), 0);
    assert_int_equal(index_decode_head(b, blen, "/m", &hb), 0);
    assert_int_equal(ha.count, 20);
    assert_int_equal(ha.total_size, e.md->total_size);
    assert_int_equal(ha.tmp_cleaned, 77);
    assert_int_equal(ha.legacy, 1);
    assert_int_equal(ha.cur_dir.ino, 6);
    assert_int_equal(ha.cur_dir.trust, INDEX_VERIFIED);
    assert_int_not_equal(ha.serial, hb.serial);
    struct index_entry d = { 0 };
    assert_int_equal(index_decode(a, alen, "/m", &d), 0);
    assert_int_equal(d.serial, ha.serial);
    maildir_free(d.md);
    assert_int_equal(index_decode_head(a, alen, "/n", &ha), ESTALE);
    assert_int_equal(index_decode_head(a, alen - 1, "/m", &ha), EINVAL);
    /* Version 1 records (the layout before the serial) read as absent, never misread. */
    ((uint32_t *)a)[1] = 1;
    assert_int_equal(index_decode_head(a, alen, "/m", &ha), MDB_NOTFOUND);
    assert_int_equal(index_decode(a, alen, "/m", &d), MDB_NOTFOUND);
    free(a);

    /*
     * Each name's length is checked, not scanned: a length past the block,
     * or one whose byte is not the NUL, or a unique part longer than the
     * name, is garbage. The head still decodes (its lengths add up).
     */
    size_t strings_len = e.md->strings_len;
    unsigned char *msg0 = (unsigned char *)b + blen - strings_len - 20 * 32;
    uint32_t name_len;
    memcpy(&name_len, msg0 + 28, 4);
    assert_int_equal(name_len, strlen(maildir_msg_name(e.md, 0)));
    uint32_t bad[] = { name_len + 1, name_len - 1, (uint32_t)strings_len, UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(msg0 + 28, &bad[i], 4);
        assert_int_equal(index_decode(b, blen, "/m", &d), EINVAL);
        assert_int_equal(index_decode_head(b, blen, "/m", &hb), 0);
    }
    memcpy(msg0 + 28, &name_len, 4);
    uint16_t unique = (uint16_t)(name_len + 1);
    memcpy(msg0 + 24, &unique, 2);
    assert_int_equal(index_decode(b, blen, "/m", &d), EINVAL);
    free(b);
    maildir_free(e.md);
}

static void test_empty_mailbox(void **state)
{
    (void)state;
    struct index_entry e = { 0 };
    e.md = maildir_new();
    void *buf;
    size_t len;
    assert_int_equal(index_encode("/m", &e, &buf, &len), 0);
    struct index_entry d = { 0 };
    assert_int_equal(index_decode(buf, len, "/m", &d), 0);
    assert_int_equal(d.md->count, 0);
    maildir_free(d.md);
    maildir_free(e.md);
    free(buf);
}

static void test_env_put_get_grow(void **state)
{
    (void)state;
    char dir[PATH_MAX], env[PATH_MAX + 16];
    assert_int_equal(tmd_make(dir, 0), 0);
    snprintf(env, sizeof(env), "%s/index", dir);

    /* 256 KiB of map, then a 2 MB record: MDB_MAP_FULL grows the map. */
    struct mbindex *ix;
    assert_int_equal(mbindex_open(env, 256 * 1024, &ix), 0);
    struct index_entry e = { .tmp_cleaned = 1 };
    e.md = sample(40000);
    struct index_entry d = { 0 };
    assert_int_equal(mbindex_get(ix, "/mail/big", &d), MDB_NOTFOUND);
    assert_int_equal(mbindex_put(ix, "/mail/big", &e, NULL), 0);
    assert_int_equal(mbindex_get(ix, "/mail/big", &d), 0);
    assert_same(e.md, d.md);
    struct index_head h;
    assert_int_equal(mbindex_get_head(ix, "/mail/big", &h), 0);
    assert_int_equal(h.count, 40000);
    assert_int_equal(h.total_size, e.md->total_size);
    assert_int_equal(h.serial, d.serial);
    assert_int_equal(mbindex_get_head(ix, "/mail/other", &h), MDB_NOTFOUND);
    maildir_free(d.md);
    assert_int_equal(mbindex_del(ix, "/mail/big"), 0);
    assert_int_equal(mbindex_get(ix, "/mail/big", &d), MDB_NOTFOUND);
    assert_false(mbindex_broken(ix));

    /* A garbage value under the right key decodes as EINVAL, not a crash. */
    assert_int_equal(mbindex_put(ix, "/mail/small", &e, NULL), 0);
    mbindex_close(ix);
    MDB_env *raw;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&raw), 0);
    assert_int_equal(mdb_env_set_mapsize(raw, 64 << 20), 0);
    assert_int_equal(mdb_env_open(raw, env, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(raw, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    assert_int_equal(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
    char junk[100];
    memset(junk, 0x42, sizeof(junk));
    v.mv_data = junk;
    v.mv_size = sizeof(junk);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    mdb_cursor_close(cur);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(raw);
    assert_int_equal(mbindex_open(env, 0, &ix), 0);
    assert_int_equal(mbindex_get(ix, "/mail/small", &d), EINVAL);
    assert_false(mbindex_broken(ix));
    mbindex_close(ix);

    maildir_free(e.md);
    assert_int_equal(tmd_remove(dir), 0);
}

/* index_max_mb: a record that does not fit is refused; the index goes on for the rest. */
static void test_limit_size_refuses_growth(void **state)
{
    (void)state;
    char dir[PATH_MAX], env[PATH_MAX + 16];
    assert_int_equal(tmd_make(dir, 0), 0);
    snprintf(env, sizeof(env), "%s/index", dir);
    struct mbindex *ix;
    assert_int_equal(mbindex_open(env, 0, &ix), 0);
    assert_int_equal(mbindex_limit_size(ix, 1 << 20), 0);
    struct index_entry big = { .tmp_cleaned = 1 }, small = { .tmp_cleaned = 1 }, d = { 0 };
    big.md = sample(40000);
    small.md = sample(3);
    assert_int_equal(mbindex_put(ix, "/mail/big", &big, NULL), MDB_MAP_FULL);
    assert_false(mbindex_broken(ix));
    assert_int_equal(mbindex_put(ix, "/mail/small", &small, NULL), 0);
    assert_int_equal(mbindex_get(ix, "/mail/small", &d), 0);
    assert_same(small.md, d.md);
    maildir_free(d.md);
    assert_int_equal(mbindex_get(ix, "/mail/big", &d), MDB_NOTFOUND);
    mbindex_close(ix);
    maildir_free(big.md);
    maildir_free(small.md);
    assert_int_equal(tmd_remove(dir), 0);
}

static long vm_size_bytes(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* The child of test_failed_grow: 0 when every step went as it should. */
static int failed_grow_child(const char *env)
{
    struct mbindex *ix;
    struct index_entry e = { .tmp_cleaned = 1 }, d = { 0 };
    e.md = sample(40000);   /* a 2 MB record, built before the limit */
    if (mbindex_open(env, 256 * 1024, &ix) != 0)
        return 1;
    /* Room for the map to double to 1 MB, not to 2 MB: the third growth fails. */
    long vm = vm_size_bytes();
    struct rlimit rl;
    if (vm < 0 || getrlimit(RLIMIT_AS, &rl) == -1)
        return 2;
    struct rlimit low = { (rlim_t)vm + (3 << 19), rl.rlim_max };
    if (setrlimit(RLIMIT_AS, &low) == -1)
        return 3;
    if (mbindex_put(ix, "/mail/big", &e, NULL) == 0)
        return 4;
    /* LMDB has no map now: any txn would fault. The index must only say so. */
    if (mbindex_get(ix, "/mail/big", &d) == 0 || mbindex_put(ix, "/mail/big", &e, NULL) == 0 ||
        !mbindex_broken(ix))
        return 5;
    if (setrlimit(RLIMIT_AS, &rl) == -1)
        return 6;
    if (mbindex_rebuild(ix) != 0 || mbindex_put(ix, "/mail/big", &e, NULL) != 0 ||
        mbindex_get(ix, "/mail/big", &d) != 0 || d.md->count != 40000)
        return 7;
    maildir_free(d.md);
    maildir_free(e.md);
    mbindex_close(ix);
    return 0;
}

/*
 * A map that cannot be mapped at its doubled size (the address space is
 * used up): LMDB has unmapped the old one already. Used to fault at the
 * next login; now the index is broken until rebuilt, and works after.
 */
static void test_failed_grow(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip();   /* ASan's allocator needs the address space an RLIMIT_AS takes away */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    char dir[PATH_MAX], env[PATH_MAX + 16];
    assert_int_equal(tmd_make(dir, 0), 0);
    snprintf(env, sizeof(env), "%s/index", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(failed_grow_child(env));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(tmd_remove(dir), 0);
}

/* An unreadable environment is replaced by mbindex_prepare (a cache). */
static void test_prepare_resets_garbage(void **state)
{
    (void)state;
    char dir[PATH_MAX], env[PATH_MAX + 16];
    int reset;
    assert_int_equal(tmd_make(dir, 0), 0);
    snprintf(env, sizeof(env), "%s/index", dir);
    assert_int_equal(mbindex_prepare(env, &reset), 0);
    assert_int_equal(reset, 0);

    char junk[65536];
    memset(junk, 0x17, sizeof(junk));
    assert_int_equal(tmd_write(dir, "index/data.mdb", junk, sizeof(junk)), 0);
    struct mbindex *ix;
    assert_int_not_equal(mbindex_open(env, 0, &ix), 0);
    assert_int_equal(mbindex_prepare(env, &reset), 0);
    assert_int_equal(reset, 1);
    assert_int_equal(mbindex_open(env, 0, &ix), 0);
    mbindex_close(ix);
    assert_int_equal(tmd_remove(dir), 0);
}

static void test_path_normalize(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "/var/mail/a", "/var/mail/a" }, { "/var//mail///a/", "/var/mail/a" },
        { "/var/./mail/./a/.", "/var/mail/a" }, { "/var/.hidden/a", "/var/.hidden/a" },
        { "/a/..b/./c", "/a/..b/c" }, { "/", "/" }, { "/.", "/" }, { "//", "/" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char p[64];
        strcpy(p, cases[i][0]);
        index_path_normalize(p);
        assert_string_equal(p, cases[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_empty_mailbox),
        cmocka_unit_test(test_env_put_get_grow),
        cmocka_unit_test(test_limit_size_refuses_growth),
        cmocka_unit_test(test_failed_grow),
        cmocka_unit_test(test_prepare_resets_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

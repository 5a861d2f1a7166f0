/* The passwd-file backend and the maildir template. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "auth/template.h"

struct fixture {
    char dir[64];
    char path[128];
    struct passwd_db db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fastpop-auth-test.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/passwd", f->dir);
    passwd_db_init(&f->db, f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char tmp[160];
    passwd_db_free(&f->db);
    unlink(f->path);
    snprintf(tmp, sizeof(tmp), "%s.new", f->path);
    unlink(tmp);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* Replace the file the way editors should: a new inode, renamed over. */
static void replace_file(struct fixture *f, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.new", f->path);
    write_file(tmp, text);
    assert_int_equal(rename(tmp, f->path), 0);
}

static const char sample[] =
    "# fastpop users\n"
    "\n"
    "   \t\n"
    "alice@example.org:{PLAIN}a1\n"
    "bob:{PLAIN}b1:1000:1000:Bob B:/home/bob:/bin/sh\n"
    "Bob:{PLAIN}B1::::/home/Bob2\r\n"
    "carol@example.org:{PLAIN}c1::::::userdb_mail=maildir:/srv/mail/carol:LAYOUT=fs quota=1G\n"
    "dave:{PLAIN}d1::::/home/dave::mail=maildir:~/Mail other=x\n"
    "erin:{PLAIN}e1:::::: userdb_mail=mbox:~/mail\n"
    "no colon here\n"
    ":{PLAIN}nouser\n"
    "bob:{PLAIN}second-bob\n"
    "frank:{PLAIN}f1:1:2:g:/h:/s:extra:with:colons userdb_mail=maildir:/m/f\n"
    "#alice:{PLAIN}commented\n"
    "gina:\n"
    "last:{PLAIN}no-newline";

static void test_parse_fields(void **state)
{
    struct fixture *f = *state;
    const struct passwd_entry *e;
    int changed;

    write_file(f->path, sample);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(f->db.stats.users, 9);
    assert_int_equal(f->db.count, 9);
    assert_int_equal(f->db.stats.bad_lines, 2);
    assert_int_equal(f->db.stats.first_bad_line, 10);
    assert_int_equal(f->db.stats.duplicates, 1);
    assert_int_equal(f->db.stats.first_duplicate_line, 12);

    e = passwd_db_lookup(&f->db, "alice@example.org");
    assert_non_null(e);
    assert_string_equal(e->password, "{PLAIN}a1");
    assert_string_equal(e->home, "");
    assert_string_equal(e->mail, "");
    assert_int_equal(e->line, 4);

    /* The first "bob" wins over the one on line 12. */
    e = passwd_db_lookup(&f->db, "bob");
    assert_non_null(e);
    assert_string_equal(e->password, "{PLAIN}b1");
    assert_string_equal(e->home, "/home/bob");

    /* Case-sensitive names; CRLF line ends are tolerated. */
    e = passwd_db_lookup(&f->db, "Bob");
    assert_non_null(e);
    assert_string_equal(e->password, "{PLAIN}B1");
    assert_string_equal(e->home, "/home/Bob2");
    assert_null(passwd_db_lookup(&f->db, "BOB"));

    e = passwd_db_lookup(&f->db, "carol@example.org");
    assert_non_null(e);
    assert_string_equal(e->mail, "/srv/mail/carol");
    assert_int_equal(e->mail_unsupported, 0);

    e = passwd_db_lookup(&f->db, "dave");
    assert_non_null(e);
    assert_string_equal(e->mail, "~/Mail");

    e = passwd_db_lookup(&f->db, "erin");
    assert_non_null(e);
    assert_int_equal(e->mail_unsupported, 1);

    /* Extra holds everything after the 7th colon, colons included. */
    e = passwd_db_lookup(&f->db, "frank");
    assert_non_null(e);
    assert_string_equal(e->home, "/h");
    assert_string_equal(e->mail, "/m/f");

    e = passwd_db_lookup(&f->db, "gina");
    assert_non_null(e);
    assert_string_equal(e->password, "");

    e = passwd_db_lookup(&f->db, "last");
    assert_non_null(e);
    assert_string_equal(e->password, "{PLAIN}no-newline");

    assert_null(passwd_db_lookup(&f->db, "#alice"));
    assert_null(passwd_db_lookup(&f->db, "no colon here"));
    assert_null(passwd_db_lookup(&f->db, ""));
    assert_null(passwd_db_lookup(&f->db, "nobody"));
}

static void test_empty_file(void **state)
{
    struct fixture *f = *state;
    int changed;

    write_file(f->path, "");
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(f->db.count, 0);
    assert_null(passwd_db_lookup(&f->db, "alice"));
}

static void test_reload_on_change(void **state)
{
    struct fixture *f = *state;
    int changed;

    replace_file(f, "alice:{PLAIN}one\n");
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 1);
    assert_string_equal(passwd_db_lookup(&f->db, "alice")->password, "{PLAIN}one");

    /* Unchanged: no reload. */
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 0);

    /* Renamed over: new inode. */
    replace_file(f, "alice:{PLAIN}two\nbob:{PLAIN}b\n");
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 1);
    assert_string_equal(passwd_db_lookup(&f->db, "alice")->password, "{PLAIN}two");
    assert_non_null(passwd_db_lookup(&f->db, "bob"));

    /* Rewritten in place with the same size: only the times tell. */
    write_file(f->path, "alice:{PLAIN}TWO\nbob:{PLAIN}b\n");
    struct timespec times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, f->path, times, 0), 0);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 1);
    assert_string_equal(passwd_db_lookup(&f->db, "alice")->password, "{PLAIN}TWO");

    /* Deleted: old users must stop working, and the failure is news once. */
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(changed, 1);
    assert_null(passwd_db_lookup(&f->db, "alice"));
    assert_int_equal(passwd_db_refresh(&f->db, &changed), -1);
    assert_int_equal(changed, 0);

    /* Back again. */
    replace_file(f, "carol:{PLAIN}c\n");
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_int_equal(changed, 1);
    assert_non_null(passwd_db_lookup(&f->db, "carol"));
    assert_null(passwd_db_lookup(&f->db, "alice"));
}

static void test_unreadable(void **state)
{
    struct fixture *f = *state;
    int changed;

    /* A directory where the file should be: not a regular file. */
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(changed, 1);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), -1);
    assert_int_equal(changed, 0);
    assert_int_equal(rmdir(f->path), 0);

    /* A NUL byte would cut a line silently: the whole file is refused. */
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite("a:{PLAIN}x\0\nb:{PLAIN}y\n", 1, 23, fp), 23);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), -1);
    assert_int_equal(errno, EINVAL);
    assert_null(passwd_db_lookup(&f->db, "b"));

    /* Permissions only bind a non-root test run. */
    replace_file(f, "a:{PLAIN}x\n");
    assert_int_equal(chmod(f->path, 0), 0);
    int rc = passwd_db_refresh(&f->db, &changed);
    if (geteuid() != 0) {
        assert_int_equal(rc, -1);
        assert_int_equal(errno, EACCES);
    } else {
        assert_int_equal(rc, 0);
    }
    /* chmod changes ctime: a fixed permission is noticed without a new inode. */
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(passwd_db_refresh(&f->db, &changed), 0);
    assert_non_null(passwd_db_lookup(&f->db, "a"));
}

static void test_template(void **state)
{
    char out[64];
    (void)state;

    assert_int_equal(template_expand("/var/mail/%d/%n", "bob@example.org", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/mail/example.org/bob");
    assert_int_equal(template_expand("/m/%u/%%/x", "bob@example.org", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/m/bob@example.org/%/x");
    /* Plain user: %n is the whole name, %d is empty. */
    assert_int_equal(template_expand("/var/mail/%d/%n", "bob", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/mail//bob");
    /* Only the first '@' splits. */
    assert_int_equal(template_expand("/%d/%n", "a@b@c", "", out, sizeof(out)), 0);
    assert_string_equal(out, "/b@c/a");
    assert_int_equal(template_expand("%h/Maildir", "bob", "/home/bob", out, sizeof(out)), 0);
    assert_string_equal(out, "/home/bob/Maildir");
    assert_int_equal(template_expand("~/Mail", "bob", "/home/bob", out, sizeof(out)), 0);
    assert_string_equal(out, "/home/bob/Mail");

    /* %h (or ~) with no home field. */
    assert_int_equal(template_expand("%h/Maildir", "bob", "", out, sizeof(out)), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(template_expand("~/Mail", "bob", "", out, sizeof(out)), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(template_expand("/m/%x", "bob", "", out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(template_expand("/m/%", "bob", "", out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    /* A relative home gives a relative path: refused. */
    assert_int_equal(template_expand("%h/Maildir", "bob", "home/bob", out, sizeof(out)), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(template_expand("/%u/%u/%u/%u", "0123456789abcdefghij", "", out, sizeof(out)), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    /* Exactly fitting: 63 characters and the NUL. */
    assert_int_equal(template_expand("/%u", "0123456789012345678901234567890123456789012345678901234567890x",
                                     "", out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 63);
}

/* A user name never climbs out of the template's fixed text (%u %n %d). */
static void test_template_refuses_escapes(void **state)
{
    char out[128];
    (void)state;
    const char *bad[] = {
        "../x", "..", ".", "a/b", "/abs", ".hidden", "%h", "a%u", "a\x01b", "a\nb", "a\x7f",
        "user@..", "user@.", "user@../../etc", "user@a/b", "user@.hidden", "../x@example.org",
        "@example.org",   /* empty local part: %n would name the domain's directory */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* Refused whatever the template uses: the same name is usable everywhere or nowhere. */
        const char *tmpls[] = { "/var/mail/%d/%n", "/var/mail/%u", "%h/Maildir" };
        for (size_t k = 0; k < sizeof(tmpls) / sizeof(tmpls[0]); k++) {
            errno = 0;
            assert_int_equal(template_expand(tmpls[k], bad[i], "/home/x", out, sizeof(out)), -1);
            assert_int_equal(errno, EPERM);
        }
    }
    /* Dots inside a name are fine; only a leading one is refused. */
    assert_int_equal(template_expand("/var/mail/%d/%n", "a.b..c@ex.ample.org", "", out,
                                     sizeof(out)), 0);
    assert_string_equal(out, "/var/mail/ex.ample.org/a.b..c");
    assert_int_equal(template_expand("/var/mail/%u", "j\xc3\xbcrgen", "", out, sizeof(out)), 0);
    /* A "." or ".." component from anywhere (here the home field) is refused too. */
    assert_int_equal(template_expand("%h/Maildir", "bob", "/home/../etc", out, sizeof(out)), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(template_expand("%h/Maildir", "bob", "/home/./bob", out, sizeof(out)), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(template_expand("%h/..", "bob", "/home/bob", out, sizeof(out)), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(template_expand("%h/Mail..dir/.x", "bob", "/home/bob", out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_on_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_template_refuses_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

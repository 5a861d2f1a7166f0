/*
 * X-UIDL headers (maildir/xuidl.h): qpopper's and UW's UIDLs kept in the
 * messages of a converted mbox, reused when x_uidl_header is on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir/legacy.h"
#include "maildir/scan.h"
#include "maildir/uidl.h"
#include "maildir/xuidl.h"
#include "t/unit/helper_maildir.h"

static void put(const char *root, const char *name, const char *text)
{
    char rel[PATH_MAX + 16];
    snprintf(rel, sizeof(rel), "cur/%s", name);
    assert_int_equal(tmd_write(root, rel, text, strlen(text)), 0);
}

static const char *uidl_of(const struct maildir *md, const char *name)
{
    static char out[256];
    for (size_t i = 0; i < md->count; i++) {
        if (strcmp(maildir_msg_name(md, i), name) == 0) {
            size_t len;
            const char *u = maildir_msg_uidl(md, i, &len);
            snprintf(out, sizeof(out), "%.*s", (int)len, u);
            return out;
        }
    }
    fail_msg("no message %s", name);
    return NULL;
}

static void test_read_header(void **state)
{
    (void)state;
    char root[PATH_MAX], out[MAILDIR_UIDL_SIZE];
    size_t len;
    assert_int_equal(tmd_make(root, 1), 0);
    /* qpopper's form, CRLF, any case of the name, blanks around the value */
    put(root, "1.a:2,", "Received: x\r\nx-uidl:  a3f!\"Zq)e!9-Jg!!  \r\nSubject: s\r\n\r\nbody\r\n");
    put(root, "2.b:2,", "Subject: none\n\nX-UIDL: in-the-body\n");
    put(root, "3.c:2,", "X-UIDL: has space\nSubject: s\n\n");      /* not a UIDL */
    put(root, "4.d:2,", "X-UIDL: 0123456789012345678901234567890123456789012345678901234567890123456789x\n\n");
    put(root, "5.e:2,", "Subject: s\nX-UIDL: first\nX-UIDL: second\n\n");
    put(root, "6.f:2,", "X-UIDL: no-end-of-line");
    int curfd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(curfd >= 0);
    int fd = openat(curfd, "cur", O_RDONLY | O_DIRECTORY);
    close(curfd);
    curfd = fd;
    assert_int_equal(xuidl_read(curfd, "1.a:2,", out, sizeof(out), &len), 1);
    assert_string_equal(out, "a3f!\"Zq)e!9-Jg!!");
    assert_int_equal(len, strlen(out));
    assert_int_equal(xuidl_read(curfd, "2.b:2,", out, sizeof(out), &len), 0);
    assert_int_equal(xuidl_read(curfd, "3.c:2,", out, sizeof(out), &len), 0);
    assert_int_equal(xuidl_read(curfd, "4.d:2,", out, sizeof(out), &len), 0); /* 71 characters */
    assert_int_equal(xuidl_read(curfd, "5.e:2,", out, sizeof(out), &len), 1);
    assert_string_equal(out, "first");
    assert_int_equal(xuidl_read(curfd, "6.f:2,", out, sizeof(out), &len), 0);
    errno = 0;
    assert_int_equal(xuidl_read(curfd, "7.gone:2,", out, sizeof(out), &len), -1);
    assert_int_equal(errno, ENOENT);
    /* A symlink is not followed (maildir/open_file.h). */
    char link[PATH_MAX + 32];
    snprintf(link, sizeof(link), "%s/cur/8.link:2,", root);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    errno = 0;
    assert_int_equal(xuidl_read(curfd, "8.link:2,", out, sizeof(out), &len), -1);
    assert_int_equal(errno, ELOOP);
    close(curfd);
    assert_int_equal(tmd_remove(root), 0);
}

/* A header past XUIDL_HEADER_MAX is not looked for. */
static void test_header_bound(void **state)
{
    (void)state;
    char root[PATH_MAX], out[MAILDIR_UIDL_SIZE];
    size_t len;
    assert_int_equal(tmd_make(root, 1), 0);
    size_t n = XUIDL_HEADER_MAX + 100;
    char *text = malloc(n + 64);
    assert_non_null(text);
    size_t o = 0;
    while (o < XUIDL_HEADER_MAX)
        o += (size_t)sprintf(text + o, "Received: from somewhere by elsewhere\n");
    o += (size_t)sprintf(text + o, "X-UIDL: too-late\n\nbody\n");
    put(root, "1.a:2,", text);
    /* Just inside the bound it is found. */
    o = 0;
    while (o + 40 < XUIDL_HEADER_MAX - 100)
        o += (size_t)sprintf(text + o, "Received: from somewhere by elsewhere\n");
    o += (size_t)sprintf(text + o, "X-UIDL: in-time\n\nbody\n");
    put(root, "2.b:2,", text);
    free(text);
    char cur[PATH_MAX + 16];
    snprintf(cur, sizeof(cur), "%s/cur", root);
    int curfd = open(cur, O_RDONLY | O_DIRECTORY);
    assert_int_equal(xuidl_read(curfd, "1.a:2,", out, sizeof(out), &len), 0);
    assert_int_equal(xuidl_read(curfd, "2.b:2,", out, sizeof(out), &len), 1);
    assert_string_equal(out, "in-time");
    close(curfd);
    assert_int_equal(tmd_remove(root), 0);
}

static const char *known_value;
static int known_calls;

static int fake_known(void *arg, const char *name, size_t unique_len, const char **uidl, size_t *len)
{
    (void)arg;
    known_calls++;
    if (unique_len == 3 && memcmp(name, "3.c", 3) == 0) {
        *uidl = known_value;
        *len = strlen(known_value);
        return 1;
    }
    return 0;
}

static void test_apply(void **state)
{
    (void)state;
    char root[PATH_MAX];
    assert_int_equal(tmd_make(root, 1), 0);
    put(root, "1.a:2,", "X-UIDL: q1\n\n");
    put(root, "2.b:2,", "X-UIDL: q1\n\n");          /* the same value again: keeps its own */
    put(root, "3.c:2,", "X-UIDL: never-read\n\n");  /* the index knows its UIDL */
    put(root, "4.d:2,", "Subject: no header\n\n");
    put(root, "5.e:2,", "X-UIDL: 6.f\n\n");         /* another message's own UIDL */
    put(root, "6.f:2,", "Subject: s\n\n");
    put(root, "7.g:2,", "X-UIDL: from-header\n\n"); /* the legacy list knows it: list wins */
    struct maildir *md;
    assert_int_equal(maildir_scan(root, time(NULL), &md), 0);
    struct legacy_list *lg = legacy_new(LEGACY_COURIER, 3);
    assert_non_null(lg);
    assert_int_equal(legacy_add(lg, "7.g", 3, "UID7-1", 6, 7, 0, 0), 0);
    assert_int_equal(legacy_finish(lg), 0);
    assert_int_equal(legacy_apply(lg, md), 0);
    char cur[PATH_MAX + 16];
    snprintf(cur, sizeof(cur), "%s/cur", root);
    int curfd = open(cur, O_RDONLY | O_DIRECTORY);
    known_value = "kept-by-index";
    known_calls = 0;
    assert_int_equal(xuidl_apply(curfd, lg, md, fake_known, NULL), 0);
    assert_int_equal(known_calls, 6);
    assert_string_equal(uidl_of(md, "1.a:2,"), "q1");
    assert_string_equal(uidl_of(md, "2.b:2,"), "2.b");
    assert_string_equal(uidl_of(md, "3.c:2,"), "kept-by-index");
    assert_string_equal(uidl_of(md, "4.d:2,"), "4.d");
    assert_string_equal(uidl_of(md, "5.e:2,"), "5.e");
    assert_string_equal(uidl_of(md, "6.f:2,"), "6.f");
    assert_string_equal(uidl_of(md, "7.g:2,"), "UID7-1");
    close(curfd);
    legacy_free(lg);
    maildir_free(md);
    assert_int_equal(tmd_remove(root), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_header),
        cmocka_unit_test(test_header_bound),
        cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

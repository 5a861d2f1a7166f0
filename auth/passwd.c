#include "auth/passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PASSWD_FIELDS 8
#define FIELD_HOME 5
#define FIELD_EXTRA 7

void passwd_db_init(struct passwd_db *db, const char *path)
{
    memset(db, 0, sizeof(*db));
    snprintf(db->path, sizeof(db->path), "%s", path);
}

static void drop_contents(struct passwd_db *db)
{
    if (db->text != NULL) {
        explicit_bzero(db->text, db->text_len);
        free(db->text);
    }
    free(db->entries);
    db->text = NULL;
    db->text_len = 0;
    db->entries = NULL;
    db->count = 0;
    memset(&db->stats, 0, sizeof(db->stats));
}

void passwd_db_free(struct passwd_db *db)
{
    drop_contents(db);
    db->seen = 0;
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

/* A POP3 policy field (auth/passwd.h) into e: 1 if tok is one, 0 if not. */
static int parse_policy_field(char *tok, struct passwd_entry *e)
{
    char *eq = strchr(tok, '=');
    int on = 0, rc;

    if (eq == NULL)
        return 0;
    *eq = '\0';
    const char *value = eq + 1;
    if (strcmp(tok, "disablepop3") == 0) {
        if ((rc = user_policy_parse_bool(value, &on)) == 0)
            e->pop3_disabled = on;
    } else if (strcmp(tok, "disableinsecurepop3") == 0) {
        if ((rc = user_policy_parse_bool(value, &on)) == 0 && on)
            e->policy.flags |= USER_POLICY_NO_PLAINTEXT;
    } else if (strcmp(tok, "pop3_login_delay") == 0) {
        rc = user_policy_set_login_delay(&e->policy, value);
    } else if (strcmp(tok, "pop3_expire") == 0) {
        rc = user_policy_set_expire(&e->policy, value);
    } else {
        *eq = '=';
        return 0;
    }
    if (rc == -1 && e->policy_bad == NULL)
        e->policy_bad = tok;   /* the name: the '=' is cut, so it is a string of its own */
    return 1;
}

/* userdb_mail= / mail= and the POP3 policy in the space-separated extra field. */
static void parse_extra(char *extra, struct passwd_entry *e)
{
    char *save = NULL;
    for (char *tok = strtok_r(extra, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        char *value;
        if (parse_policy_field(tok, e))
            continue;
        if (strncmp(tok, "userdb_mail=", 12) == 0)
            value = tok + 12;
        else if (strncmp(tok, "mail=", 5) == 0)
            value = tok + 5;
        else
            continue;
        if (strncmp(value, "maildir:", 8) == 0 && value[8] != '\0' && value[8] != ':') {
            /* Dovecot options (":LAYOUT=fs", ":INDEX=...") follow the path. */
            value += 8;
            value[strcspn(value, ":")] = '\0';
            e->mail = value;
            e->mail_unsupported = 0;
        } else {
            e->mail = "";
            e->mail_unsupported = 1;
        }
    }
}

static int parse_line(char *line, int lineno, struct passwd_entry *e)
{
    char *f[PASSWD_FIELDS] = { 0 };
    int n = 0;

    f[n++] = line;
    for (char *p = line; *p && n < PASSWD_FIELDS; p++) {
        if (*p == ':') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    if (n < 2 || f[0][0] == '\0')
        return -1;
    memset(e, 0, sizeof(*e));
    e->user = f[0];
    e->password = f[1];
    e->home = n > FIELD_HOME ? f[FIELD_HOME] : "";
    e->mail = "";
    e->line = lineno;
    if (n > FIELD_EXTRA)
        parse_extra(f[FIELD_EXTRA], e);
    return 0;
}

static int entry_order(const void *a, const void *b)
{
    const struct passwd_entry *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

int passwd_db_parse(struct passwd_db *db)
{
    size_t lines = 1;
    for (size_t i = 0; i < db->text_len; i++)
        lines += db->text[i] == '\n';

    free(db->entries);
    db->count = 0;
    memset(&db->stats, 0, sizeof(db->stats));
    db->entries = calloc(lines, sizeof(*db->entries));
    if (db->entries == NULL)
        return -1;

    struct passwd_stats *st = &db->stats;
    char *p = db->text;
    for (int lineno = 1; p != NULL; lineno++) {
        char *line = p;
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p = NULL;
        }
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (line[0] == '#' || is_blank(line))
            continue;
        if (parse_line(line, lineno, &db->entries[db->count]) == -1) {
            if (st->bad_lines++ == 0)
                st->first_bad_line = lineno;
            continue;
        }
        db->count++;
    }

    qsort(db->entries, db->count, sizeof(*db->entries), entry_order);
    size_t kept = 0;
    for (size_t i = 0; i < db->count; i++) {
        if (kept > 0 && strcmp(db->entries[kept - 1].user, db->entries[i].user) == 0) {
            if (st->duplicates++ == 0 || db->entries[i].line < st->first_duplicate_line)
                st->first_duplicate_line = db->entries[i].line;
            continue;
        }
        db->entries[kept++] = db->entries[i];
    }
    db->count = kept;
    st->users = (int)kept;
    return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Read the open file completely; fills db->text. -1 with errno. */
static int read_all(struct passwd_db *db, int fd, struct stat *st)
{
    if (fstat(fd, st) == -1)
        return -1;
    if (!S_ISREG(st->st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if (st->st_size > PASSWD_FILE_MAX) {
        errno = EFBIG;
        return -1;
    }
    size_t cap = (size_t)st->st_size + 1;
    char *text = malloc(cap);
    if (text == NULL)
        return -1;
    size_t len = 0;
    for (;;) {
        /* Read to EOF, not to st_size: the file may have grown since fstat. */
        if (len + 1 == cap) {
            if (cap > PASSWD_FILE_MAX) {
                explicit_bzero(text, len);
                free(text);
                errno = EFBIG;
                return -1;
            }
            char *bigger = realloc(text, cap * 2);
            if (bigger == NULL) {
                explicit_bzero(text, len);
                free(text);
                return -1;
            }
            text = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, text + len, cap - 1 - len);
        if (n == 0)
            break;
        if (n == -1) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            explicit_bzero(text, len);
            free(text);
            errno = saved;
            return -1;
        }
        len += (size_t)n;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len) != NULL) {
        /* A NUL would silently cut a line; refuse the file as a whole. */
        explicit_bzero(text, len);
        free(text);
        errno = EINVAL;
        return -1;
    }
    db->text = text;
    db->text_len = len;
    return 0;
}

static int load(struct passwd_db *db, struct stat *st)
{
    int fd = open(db->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1)
        return -1;
    int rc = read_all(db, fd, st);
    int saved = errno;
    close(fd);
    if (rc == -1) {
        errno = saved;
        return -1;
    }
    return passwd_db_parse(db);
}

int passwd_db_refresh(struct passwd_db *db, int *changed)
{
    struct stat st;
    int old_err = db->err, was_seen = db->seen;

    *changed = 0;
    if (stat(db->path, &st) == -1) {
        int err = errno;
        drop_contents(db);
        /* Nothing to compare a missing file by: the errno is its identity. */
        memset(&db->st, 0, sizeof(db->st));
        *changed = !was_seen || old_err != err;
        db->seen = 1;
        db->err = err;
        errno = err;
        return -1;
    }
    if (was_seen && same_file(&st, &db->st)) {
        errno = db->err;
        return db->err ? -1 : 0;
    }

    drop_contents(db);
    *changed = 1;
    if (load(db, &st) == -1) {
        int err = errno;
        drop_contents(db);
        *changed = !was_seen || old_err != err || old_err == 0;
        /* Out of memory is not a property of the file: try again next time. */
        db->seen = err != ENOMEM;
        db->st = st;
        db->err = err;
        errno = err;
        return -1;
    }
    db->seen = 1;
    db->st = st;
    db->err = 0;
    return 0;
}

static int lookup_order(const void *key, const void *elem)
{
    const struct passwd_entry *e = elem;
    return strcmp(key, e->user);
}

const struct passwd_entry *passwd_db_lookup(const struct passwd_db *db, const char *user)
{
    if (db->count == 0)
        return NULL;
    return bsearch(user, db->entries, db->count, sizeof(*db->entries), lookup_order);
}

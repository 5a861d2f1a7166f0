/*
 * The users of courier-authdaemond, for the site-wide UIDL report: its
 * ENUMERATE command (what authenumerate uses) answers every module's users,
 * one per line, "name TAB uid TAB gid TAB home TAB maildir TAB options",
 * between "# <module>" comment lines, up to a "." line. Each becomes a user
 * as a login's answer would (auth/passdb_authlib_answer.c): the same
 * HOME/MAILDIR rule, and a foreign UID or disablepop3 give no maildir.
 * Blocking, with authlib_timeout for each wait for data.
 */
#include "daemon/popctl/site_users.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/passdb_authlib.h"
#include "auth/passwd.h"

/* A listing as big as the largest password file fastpop holds (auth/passwd.h). */
#define SITE_AUTHLIB_MAX PASSWD_FILE_MAX

static int read_all(int fd, int timeout_s, char **out, FILE *err)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        /* Done at a "." line that starts the listing or follows a newline. */
        if ((len == 2 && memcmp(buf, ".\n", 2) == 0) ||
            (len >= 3 && memcmp(buf + len - 3, "\n.\n", 3) == 0))
            break;
        if (len + 1 >= cap) {
            if (cap >= SITE_AUTHLIB_MAX) {
                fprintf(err, "popctl: authdaemond's user list passes %d bytes\n",
                        SITE_AUTHLIB_MAX);
                free(buf);
                return -1;
            }
            char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                return -1;
            }
            buf = p;
            cap *= 2;
        }
        struct pollfd pfd = { fd, POLLIN, 0 };
        int n = poll(&pfd, 1, timeout_s * 1000);
        if (n == -1 && errno == EINTR)
            continue;
        ssize_t got = n == 1 ? read(fd, buf + len, cap - 1 - len) : -1;
        if (got == -1 && n == 1 && errno == EINTR)
            continue;
        if (got <= 0) {
            fprintf(err, "popctl: authdaemond's user list: %s\n",
                    n == 0 ? "no answer within authlib_timeout"
                    : got == 0 ? "it closed the connection before the end" : strerror(errno));
            free(buf);
            return -1;
        }
        len += (size_t)got;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* One record line into out, through the login answer's own rules. */
static int add_record(const struct passdb_authlib_settings *s, char *line, struct site_users *out)
{
    char *field[6];
    int n = 0;
    for (char *p = line; n < 6; n++) {
        field[n] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL) {
            n++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    /* Not a record (fewer than name, uid, gid, home): skipped, as authenumerate does. */
    if (n < 4 || field[0][0] == '\0')
        return 0;
    size_t need = strlen(line) + 128;
    for (int i = 1; i < n; i++)
        need += strlen(field[i]);
    char *text = malloc(need);
    if (text == NULL)
        return -1;
    snprintf(text, need, "ADDRESS=%s\nUID=%s\nHOME=%s\nMAILDIR=%s\nOPTIONS=%s\n.\n", field[0],
             field[1], field[3], n > 4 ? field[4] : "", n > 5 ? field[5] : "");
    struct passdb_ldap_answer ans;
    int rc = passdb_authlib_parse(s, field[0], text, &ans);
    free(text);
    if (rc == -1)
        return 0;
    return site_users_add(out, ans.user[0] ? ans.user : field[0],
                          ans.status == AUTH_OK ? ans.maildir : NULL,
                          ans.status == AUTH_OK ? NULL : ans.message);
}

int site_users_authlib(const struct config *cfg, struct site_users *out, FILE *err)
{
    struct passdb_authlib_settings s;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char why[256];
    char *text = NULL;

    if (passdb_authlib_settings_from(&s, cfg, why, sizeof(why)) == -1) {
        fprintf(err, "popctl: %s\n", why);
        return -1;
    }
    memcpy(sa.sun_path, s.socket_path, strlen(s.socket_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        fprintf(err, "popctl: authlib_socket %s: %s\n", s.socket_path, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    static const char request[] = "ENUMERATE\n";
    int rc;
    if (write(fd, request, sizeof(request) - 1) != (ssize_t)sizeof(request) - 1) {
        fprintf(err, "popctl: authlib_socket %s: %s\n", s.socket_path, strerror(errno));
        rc = -1;
    } else {
        rc = read_all(fd, s.timeout, &text, err);
    }
    close(fd);
    if (rc == -1)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || strcmp(line, ".") == 0)
            continue;
        rc = add_record(&s, line, out);
    }
    if (rc == -1)
        fprintf(err, "popctl: %s\n", strerror(errno));
    free(text);
    return rc;
}

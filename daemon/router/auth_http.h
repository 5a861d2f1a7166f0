/*
 * nginx's mail auth_http protocol, the router's side (nginx's
 * ngx_mail_auth_http_module; facts in the project's interop notes):
 *
 * Request: "GET <uri> HTTP/1.0", then headers, then an empty line; the
 * ones used here are Auth-Method, Auth-User and Auth-Pass (%-escaped: nginx
 * escapes space, '%' and 0x00-0x1F), Auth-Protocol, Auth-Login-Attempt and
 * Client-IP. Header names are case-insensitive; each used one at most once.
 *
 * Answer: only the headers count (nginx ignores the status line and body):
 *   Auth-Status: OK, Auth-Server: <IP literal>, Auth-Port: <port>[, Auth-User: <name>]
 *   Auth-Status: <text sent to the client after -ERR>[, Auth-Wait: <s>]
 * Without Auth-Wait nginx closes the client's connection after the text.
 */
#ifndef FASTPOP_ROUTER_AUTH_HTTP_H
#define FASTPOP_ROUTER_AUTH_HTTP_H

#include <stddef.h>

#include "daemon/runtime/username.h"

/* A request is one small header block: longer ones are refused (431). */
#define AUTH_HTTP_REQUEST_MAX 8192
#define AUTH_HTTP_PASS_MAX 1024

enum auth_http_parse {
    AUTH_HTTP_INCOMPLETE = 0,  /* no empty line yet: read more */
    AUTH_HTTP_COMPLETE = 1,
    AUTH_HTTP_BAD = -1,        /* malformed: answer 400 and close */
    AUTH_HTTP_TOO_LONG = -2,   /* AUTH_HTTP_REQUEST_MAX reached without an end */
};

struct auth_http_request {
    char method[16];              /* Auth-Method: "plain", "apop", ... */
    char protocol[8];             /* Auth-Protocol: "pop3", "imap", "smtp" */
    char user[USERNAME_MAX];      /* Auth-User, decoded */
    char pass[AUTH_HTTP_PASS_MAX];/* Auth-Pass, decoded; wipe after use */
    char client_ip[48];           /* Client-IP, as sent (checked by the caller) */
    unsigned attempt;             /* Auth-Login-Attempt, 1 if absent */
    size_t length;                /* bytes of the request, empty line included */
};

/*
 * Parse the request at the start of buf[0..len). Only a complete header
 * block is judged; missing Auth-User, Auth-Pass or Client-IP, a value too
 * long for its field, a bad %-escape, a NUL in a decoded value, a header
 * given twice, or a request line other than GET ... HTTP/1.x is BAD.
 */
enum auth_http_parse auth_http_parse(const char *buf, size_t len, struct auth_http_request *req);

/* Answers, written to out (NUL-terminated); the length, or 0 if out is too small. */
/* user: the Auth-User nginx then logs in upstream with (NULL: the client's own login). */
size_t auth_http_ok(char *out, size_t outlen, const char *server_ip, unsigned port,
                    const char *user);
/* text: what the client sees after -ERR (CR, LF and controls are dropped); wait: 0 = none. */
size_t auth_http_fail(char *out, size_t outlen, const char *text, unsigned wait);

#endif

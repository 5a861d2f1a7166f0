#include "daemon/router/auth_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/runtime/hex.h"

/* Where the header block ends (after its empty line), or 0 if it does not yet. */
static size_t block_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* %-decode v[0..n) into out (size outlen, NUL-terminated); -1 if bad or too long. */
static int decode(const char *v, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '%') {
            int a = i + 1 < n ? hex_digit((unsigned char)v[i + 1]) : -1;
            int b = i + 2 < n ? hex_digit((unsigned char)v[i + 2]) : -1;
            if (a < 0 || b < 0)
                return -1;
            ch = (char)(a * 16 + b);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Copy v[0..n) verbatim (no controls); -1 if too long or holding one. */
static int copy_plain(const char *v, size_t n, char *out, size_t outlen)
{
    if (n + 1 > outlen)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return -1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

enum header { H_METHOD, H_USER, H_PASS, H_PROTOCOL, H_ATTEMPT, H_CLIENT_IP, H_COUNT };

static const char *const header_names[H_COUNT] = {
    "Auth-Method", "Auth-User", "Auth-Pass", "Auth-Protocol", "Auth-Login-Attempt", "Client-IP",
};

static int store(struct auth_http_request *req, enum header h, const char *v, size_t n)
{
    switch (h) {
    case H_METHOD: return copy_plain(v, n, req->method, sizeof(req->method));
    case H_USER: return decode(v, n, req->user, sizeof(req->user));
    case H_PASS: return decode(v, n, req->pass, sizeof(req->pass));
    case H_PROTOCOL: return copy_plain(v, n, req->protocol, sizeof(req->protocol));
    case H_CLIENT_IP: return copy_plain(v, n, req->client_ip, sizeof(req->client_ip));
    case H_ATTEMPT: {
        char digits[12];
        if (n == 0 || copy_plain(v, n, digits, sizeof(digits)) == -1 ||
            strspn(digits, "0123456789") != n)
            return -1;
        unsigned long a = strtoul(digits, NULL, 10);
        if (a == 0 || a > 1000000)
            return -1;
        req->attempt = (unsigned)a;
        return 0;
    }
    case H_COUNT: break;
    }
    return -1;
}

/* "GET <target> HTTP/1.0" or 1.1, the line without its end. */
static int request_line_ok(const char *line, size_t n)
{
    if (n < 14 || memcmp(line, "GET ", 4) != 0)
        return 0;
    const char *sp = memchr(line + 4, ' ', n - 4);
    if (sp == NULL || sp == line + 4)
        return 0;
    size_t rest = n - (size_t)(sp + 1 - line);
    return rest == 8 && (memcmp(sp + 1, "HTTP/1.0", 8) == 0 || memcmp(sp + 1, "HTTP/1.1", 8) == 0);
}

/* A refused request keeps no password: the caller may not wipe what it does not use. */
static enum auth_http_parse refuse(struct auth_http_request *req)
{
    explicit_bzero(req->pass, sizeof(req->pass));
    return AUTH_HTTP_BAD;
}

enum auth_http_parse auth_http_parse(const char *buf, size_t len, struct auth_http_request *req)
{
    size_t end = block_end(buf, len > AUTH_HTTP_REQUEST_MAX ? AUTH_HTTP_REQUEST_MAX : len);
    if (end == 0)
        return len >= AUTH_HTTP_REQUEST_MAX ? AUTH_HTTP_TOO_LONG : AUTH_HTTP_INCOMPLETE;
    memset(req, 0, sizeof(*req));
    req->attempt = 1;
    req->length = end;
    int seen[H_COUNT] = { 0 };
    size_t pos = 0;
    for (int line_no = 0; pos < end; line_no++) {
        const char *line = buf + pos;
        const char *lf = memchr(line, '\n', end - pos);
        size_t n = (size_t)(lf - line);
        pos += n + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0)
            break;   /* the empty line */
        if (line_no == 0) {
            if (!request_line_ok(line, n))
                return refuse(req);
            continue;
        }
        const char *colon = memchr(line, ':', n);
        if (colon == NULL || colon == line)
            return refuse(req);
        size_t name_len = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vn = n - name_len - 1;
        while (vn > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        for (int h = 0; h < H_COUNT; h++) {
            if (strlen(header_names[h]) != name_len ||
                strncasecmp(line, header_names[h], name_len) != 0)
                continue;
            if (seen[h]++ || store(req, (enum header)h, v, vn) == -1)
                return refuse(req);
        }
    }
    /* nginx always names a user; an empty one could only route someone nowhere. */
    if (!seen[H_USER] || !seen[H_PASS] || !seen[H_CLIENT_IP] || req->user[0] == '\0')
        return refuse(req);
    return AUTH_HTTP_COMPLETE;
}

size_t auth_http_ok(char *out, size_t outlen, const char *server_ip, unsigned port,
                    const char *user)
{
    /* The helper's canonical names follow daemon/runtime/username.h: no CR, LF or controls. */
    int n = snprintf(out, outlen, "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: %s\r\n"
                     "Auth-Port: %u\r\n%s%s%s\r\n", server_ip, port, user ? "Auth-User: " : "",
                     user ? user : "", user ? "\r\n" : "");
    return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

size_t auth_http_fail(char *out, size_t outlen, const char *text, unsigned wait)
{
    char clean[256];
    size_t c = 0;
    for (const char *p = text; *p && c + 1 < sizeof(clean); p++) {
        if ((unsigned char)*p >= 0x20 && *p != 0x7f)
            clean[c++] = *p;
    }
    clean[c] = '\0';
    char wait_line[32] = "";
    if (wait > 0)
        snprintf(wait_line, sizeof(wait_line), "Auth-Wait: %u\r\n", wait);
    int n = snprintf(out, outlen, "HTTP/1.0 200 OK\r\nAuth-Status: %s\r\n%s\r\n", clean,
                     wait_line);
    return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

#include "metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/control_proto.h"
#include "daemon/runtime/http_clients.h"

/* Any real scraper's request is a few hundred bytes; more is not a scraper. */
#define REQUEST_MAX 8192

struct metrics_http {
    struct http_clients *clients;
    metrics_render_fn render;
    void *render_ctx;
};

static void respond(struct metrics_http *mh, uint64_t token, const char *status,
                    const char *type, const struct buf *body, int head_only, const char *extra)
{
    struct buf out;
    size_t len = body != NULL ? buf_len(body) : strlen(status) + 1;
    buf_init(&out, CONTROL_STATS_MAX + 1024);
    buf_printf(&out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n%s\r\n", status, type, len, extra);
    if (!head_only && body != NULL)
        buf_append(&out, buf_rptr(body), buf_len(body));
    else if (!head_only)
        buf_printf(&out, "%s\n", status);
    http_clients_answer(mh->clients, token, buf_rptr(&out), buf_len(&out));
    buf_free(&out);
}

/* The request line decides everything; headers are read and ignored. */
static void answer(void *ctx, uint64_t token, const char *req, size_t len)
{
    struct metrics_http *mh = ctx;
    char method[16], target[256], line[512];
    int version_at = -1;
    size_t end = strcspn(req, "\r\n");
    (void)len;
    snprintf(line, sizeof(line), "%.*s", (int)(end < sizeof(line) ? end : sizeof(line) - 1),
             req);
    if (sscanf(line, "%15s %255s %n", method, target, &version_at) != 2 || version_at < 0 ||
        (strcmp(line + version_at, "HTTP/1.0") != 0 &&
         strcmp(line + version_at, "HTTP/1.1") != 0)) {
        respond(mh, token, "400 Bad Request", "text/plain", NULL, 0, "");
        return;
    }
    int head = strcmp(method, "HEAD") == 0;
    target[strcspn(target, "?")] = '\0';
    if (strcmp(target, "/metrics") != 0) {
        respond(mh, token, "404 Not Found", "text/plain", NULL, head, "");
        return;
    }
    if (!head && strcmp(method, "GET") != 0) {
        respond(mh, token, "405 Method Not Allowed", "text/plain", NULL, 0,
                "Allow: GET, HEAD\r\n");
        return;
    }
    struct buf doc;
    buf_init(&doc, CONTROL_STATS_MAX);
    if (mh->render(mh->render_ctx, &doc) == -1)
        respond(mh, token, "503 Service Unavailable", "text/plain", NULL, head, "");
    else
        respond(mh, token, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &doc, head, "");
    buf_free(&doc);
}

struct metrics_http *metrics_http_new(struct ev_loop *loop, int listen_fd, metrics_render_fn render,
                                      void *ctx)
{
    static const struct http_clients_limits lim = {
        .max_clients = METRICS_MAX_CLIENTS,
        .client_seconds = METRICS_CLIENT_SECONDS,
        .request_max = REQUEST_MAX,
        .answer_max = CONTROL_STATS_MAX + 1024,
    };
    struct metrics_http *mh = calloc(1, sizeof(*mh));
    if (mh == NULL)
        return NULL;
    mh->render = render;
    mh->render_ctx = ctx;
    mh->clients = http_clients_new(loop, listen_fd, &lim, answer, NULL, mh);
    if (mh->clients == NULL) {
        free(mh);
        return NULL;
    }
    return mh;
}

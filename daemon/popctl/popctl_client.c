#include "popctl_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/control_proto.h"
#include "daemon/runtime/ipc.h"

const char *popctl_socket_path;

int popctl_connect(const struct config *cfg)
{
    char path[CONFIG_PATH_MAX + 32];
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (popctl_socket_path != NULL)
        snprintf(path, sizeof(path), "%s", popctl_socket_path);
    else
        snprintf(path, sizeof(path), "%s/%s", cfg->run_dir, CONTROL_SOCKET_NAME);
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Send verb with its arguments and read rows until END; -1 on a broken answer. */
int popctl_ask(int fd, int argc, char **argv, struct answer *a)
{
    static uint32_t next_id;
    struct buf b;
    unsigned char msg[IPC_MAX_MESSAGE];
    uint32_t id = ++next_id;

    a->rows = 0;
    buf_init(&b, IPC_MAX_MESSAGE);
    ipc_begin(&b, CONTROL_REQUEST, id);
    ipc_put_u32(&b, CONTROL_VERSION);
    ipc_put_str(&b, argv[0]);
    ipc_put_u32(&b, (uint32_t)(argc - 1));
    for (int i = 1; i < argc; i++)
        ipc_put_str(&b, argv[i]);
    /* The master reads with MSG_DONTWAIT semantics only; a request always fits. */
    int rc = ipc_send(fd, &b);
    buf_free(&b);
    if (rc == -1)
        return -1;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 30000) != 1)
            return -1;
        ssize_t n = ipc_recv(fd, msg, sizeof(msg));
        if (n <= 0)
            return -1;
        struct ipc_reader r;
        uint32_t type, got;
        if (ipc_reader_init(&r, msg, (size_t)n, &type, &got) == -1 || got != id)
            return -1;
        if (type == CONTROL_END) {
            a->status = (int)ipc_get_u32(&r);
            ipc_get_str(&r, a->message, sizeof(a->message));
            return ipc_reader_end(&r);
        }
        if (type != CONTROL_ROW || a->rows >= MAX_ROWS)
            return -1;
        uint32_t nf = ipc_get_u32(&r);
        if (nf > MAX_FIELDS)
            return -1;
        if (a->sink != NULL && nf == 1) {
            /* A document in pieces ("stats"): straight through, no row kept. */
            char key[32], text[IPC_MAX_MESSAGE];
            ipc_get_str(&r, key, sizeof(key));
            ipc_get_str(&r, text, sizeof(text));
            if (ipc_reader_end(&r) == -1 || strcmp(key, "text") != 0)
                return -1;
            fputs(text, a->sink);
            continue;
        }
        for (uint32_t i = 0; i < nf; i++) {
            ipc_get_str(&r, a->key[a->rows][i], sizeof(a->key[0][0]));
            ipc_get_str(&r, a->value[a->rows][i], sizeof(a->value[0][0]));
        }
        if (ipc_reader_end(&r) == -1)
            return -1;
        a->fields[a->rows++] = (int)nf;
    }
}

const char *popctl_field(const struct answer *a, int row, const char *key)
{
    for (int i = 0; row < a->rows && i < a->fields[row]; i++) {
        if (strcmp(a->key[row][i], key) == 0)
            return a->value[row][i];
    }
    return "";
}

void popctl_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

void popctl_print_json(const struct answer *a)
{
    printf("{\"status\": %d, \"message\": ", a->status);
    popctl_json_string(a->message);
    printf(", \"rows\": [");
    for (int r = 0; r < a->rows; r++) {
        printf("%s{", r ? ", " : "");
        for (int i = 0; i < a->fields[r]; i++) {
            printf("%s", i ? ", " : "");
            popctl_json_string(a->key[r][i]);
            printf(": ");
            popctl_json_string(a->value[r][i]);
        }
        printf("}");
    }
    printf("]}\n");
}

struct answer *popctl_answer_new(void)
{
    static struct answer a;
    static char keys[MAX_ROWS][MAX_FIELDS][32];
    static char values[MAX_ROWS][MAX_FIELDS][256];
    a.key = keys;
    a.value = values;
    a.sink = NULL;
    return &a;
}

/*
 * Connect, ask, and turn a refusal or a broken answer into a message and
 * an exit status: returns -1 (and sets *exit_status) unless the verb ran.
 */
int popctl_request(const struct config *cfg, int argc, char **argv, struct answer *a,
                   int *exit_status)
{
    int fd = popctl_connect(cfg);
    if (fd == -1) {
        fprintf(stderr, "popctl: fastpopd is not running (control socket: %s)\n",
                strerror(errno));
        *exit_status = EXIT_DOWN;
        return -1;
    }
    int rc = popctl_ask(fd, argc, argv, a);
    close(fd);
    if (rc == -1) {
        fprintf(stderr, "popctl: no readable answer from fastpopd\n");
        *exit_status = EXIT_REFUSED;
        return -1;
    }
    if (a->status == CONTROL_DENIED || a->status == CONTROL_BAD) {
        fprintf(stderr, "popctl: %s\n", a->message);
        *exit_status = a->status == CONTROL_DENIED ? EXIT_REFUSED : EXIT_USAGE;
        return -1;
    }
    return 0;
}


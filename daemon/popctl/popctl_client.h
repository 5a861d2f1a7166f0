/*
 * popctl's side of the control socket (protocol in daemon/runtime/control_proto.h):
 * connect, send a verb, collect the answer's rows, print them as JSON.
 */
#ifndef FASTPOP_POPCTL_CLIENT_H
#define FASTPOP_POPCTL_CLIENT_H

#include <stdio.h>

#include "daemon/runtime/config.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_DOWN = 3, EXIT_REFUSED = 4 };

/* -s SOCKET; NULL: run_dir/control.sock of the configuration. */
extern const char *popctl_socket_path;

/* The answer to the last request. */
#define MAX_ROWS 4096
#define MAX_FIELDS 16
struct answer {
    int status;                    /* enum control_status */
    char message[1024];
    int rows;
    int fields[MAX_ROWS];
    char (*key)[MAX_FIELDS][32];
    char (*value)[MAX_FIELDS][256];
    FILE *sink;                    /* set: one-field "text" rows are written here */
};

/* The one answer popctl uses (static storage, emptied). */
struct answer *popctl_answer_new(void);
int popctl_connect(const struct config *cfg);
/* Send verb with its arguments and read rows until END; -1 on a broken answer. */
int popctl_ask(int fd, int argc, char **argv, struct answer *a);
/*
 * Connect, ask, and turn a refusal or a broken answer into a message and
 * an exit status: returns -1 (and sets *exit_status) unless the verb ran.
 */
int popctl_request(const struct config *cfg, int argc, char **argv, struct answer *a,
                   int *exit_status);
/* The value of key in row, or "". */
const char *popctl_field(const struct answer *a, int row, const char *key);
void popctl_json_string(const char *s);
/* {"status": N, "message": "...", "rows": [{...}, ...]} */
void popctl_print_json(const struct answer *a);

#endif

/*
 * The IPC codec (daemon/runtime/ipc.c): every process decodes its peers' messages
 * with it. The first byte picks a field layout; the rest is the message.
 * Invariants: decoded strings are NUL-terminated, NUL-free and fit their
 * buffer; a message re-encoded from what was decoded decodes to the same
 * fields and, if the original was valid, is byte-identical.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/ipc.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { FIELDS_MAX = 6, STR_SPACE = 300 };

struct decoded {
    int nfields;
    int is_str[FIELDS_MAX];
    uint32_t u[FIELDS_MAX];
    char s[FIELDS_MAX][STR_SPACE];
};

static int decode(const uint8_t *msg, size_t len, unsigned layout, uint32_t *type, uint32_t *id,
                  struct decoded *d)
{
    struct ipc_reader r;
    memset(d, 0, sizeof(*d));
    if (ipc_reader_init(&r, msg, len, type, id) == -1)
        return -1;
    d->nfields = (int)(layout % FIELDS_MAX) + 1;
    for (int i = 0; i < d->nfields; i++) {
        d->is_str[i] = (layout >> (i + 3)) & 1;
        if (d->is_str[i]) {
            ipc_get_str(&r, d->s[i], sizeof(d->s[i]));
            fuzz_check(memchr(d->s[i], '\0', sizeof(d->s[i])) != NULL,
                       "a decoded string is not NUL-terminated");
        } else {
            d->u[i] = ipc_get_u32(&r);
        }
    }
    return ipc_reader_end(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > IPC_MAX_MESSAGE + 1)
        return 0;
    unsigned layout = data[0];
    uint32_t type, id;
    struct decoded d;
    int valid = decode(data + 1, size - 1, layout, &type, &id, &d) == 0;
    if (!valid)
        return 0;

    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    fuzz_check(ipc_begin(&b, type, id) == 0, "ipc_begin");
    for (int i = 0; i < d.nfields; i++) {
        int rc = d.is_str[i] ? ipc_put_str(&b, d.s[i]) : ipc_put_u32(&b, d.u[i]);
        fuzz_check(rc == 0, "re-encoding a decoded message failed");
    }
    fuzz_check(buf_len(&b) == size - 1 && memcmp(buf_rptr(&b), data + 1, size - 1) == 0,
               "a valid message does not re-encode to the same bytes");
    uint32_t type2, id2;
    struct decoded d2;
    fuzz_check(decode((const uint8_t *)buf_rptr(&b), buf_len(&b), layout, &type2, &id2, &d2) == 0,
               "the re-encoded message does not decode");
    fuzz_check(type2 == type && id2 == id && memcmp(&d, &d2, sizeof(d)) == 0,
               "round trip changed a field");
    buf_free(&b);
    return 0;
}

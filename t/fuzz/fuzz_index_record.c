/*
 * Mailbox index records (shm/index.c): the index lives in a directory the
 * mail user owns, so a worker reads records any mail-uid process could have
 * written. Invariants: decoding never reads outside the record; a decoded
 * record re-encodes and decodes to the same messages (round trip); the head
 * agrees with the full record; a record stored for one path is refused for
 * another. The first byte picks the mode: odd builds a mailbox from the
 * input (one name per line) and round-trips its encoding; even decodes the
 * rest of the input as a record found on disk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir/scan.h"
#include "shm/index.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PATH[] = "/var/mail/alice/Maildir";

static void same_messages(const struct maildir *a, const struct maildir *b)
{
    fuzz_check(a->count == b->count && a->total_size == b->total_size,
               "round trip changed the message count or size");
    for (size_t i = 0; i < a->count; i++) {
        size_t la, lb;
        const char *ua = maildir_msg_uidl(a, i, &la), *ub = maildir_msg_uidl(b, i, &lb);
        fuzz_check(la == lb && memcmp(ua, ub, la) == 0, "round trip changed a UIDL");
        fuzz_check(strcmp(maildir_msg_name(a, i), maildir_msg_name(b, i)) == 0,
                   "round trip changed a name");
        fuzz_check(a->msgs[i].size == b->msgs[i].size, "round trip changed a size");
    }
}

static void round_trip_built(const char *text, size_t len)
{
    struct index_entry e;
    memset(&e, 0, sizeof(e));
    e.md = maildir_new();
    fuzz_check(e.md != NULL, "maildir_new");
    e.tmp_cleaned = (int64_t)len;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char name[256];
        if (n > 0 && n < sizeof(name) && !memchr(p, '\0', n) && !memchr(p, '/', n)) {
            memcpy(name, p, n);
            name[n] = '\0';
            fuzz_check(maildir_add(e.md, name, n * 7) == 0, "maildir_add");
        }
        p += n + 1;
    }
    void *buf = NULL;
    size_t blen = 0;
    fuzz_check(index_encode(PATH, &e, &buf, &blen) == 0, "a built record does not encode");
    struct index_entry back;
    memset(&back, 0, sizeof(back));
    fuzz_check(index_decode(buf, blen, PATH, &back) == 0, "an encoded record does not decode");
    same_messages(e.md, back.md);
    free(buf);
    maildir_free(back.md);
    maildir_free(e.md);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    if (data[0] & 1) {
        round_trip_built((const char *)data + 1, size - 1);
        return 0;
    }
    data++;
    size--;
    struct index_entry e;
    struct index_head h;
    memset(&e, 0, sizeof(e));
    int full = index_decode(data, size, PATH, &e);
    int head = index_decode_head(data, size, PATH, &h);
    if (full != 0) {
        maildir_free(e.md);
        return 0;
    }
    fuzz_check(e.md != NULL, "a decoded record without messages");
    fuzz_check(head == 0, "the full record decodes but its head does not");
    fuzz_check(h.count == e.md->count && h.total_size == e.md->total_size,
               "the head disagrees with the messages");
    uint64_t sum = 0;
    for (size_t i = 0; i < e.md->count; i++) {
        sum += e.md->msgs[i].size;
        size_t len;
        maildir_msg_uidl(e.md, i, &len);
        fuzz_check(len > 0, "a message with an empty UIDL");
    }
    fuzz_check(sum == e.md->total_size, "the total size is not the sum of the sizes");

    void *buf = NULL;
    size_t len = 0;
    fuzz_check(index_encode(PATH, &e, &buf, &len) == 0, "a decoded record does not encode");
    struct index_entry again;
    memset(&again, 0, sizeof(again));
    fuzz_check(index_decode(buf, len, PATH, &again) == 0, "a re-encoded record does not decode");
    same_messages(e.md, again.md);
    fuzz_check(again.legacy == e.legacy && again.tmp_cleaned == e.tmp_cleaned,
               "round trip changed the record's head");
    struct index_entry other;
    memset(&other, 0, sizeof(other));
    fuzz_check(index_decode(buf, len, "/var/mail/bob/Maildir", &other) != 0,
               "a record was accepted for another mailbox");
    maildir_free(other.md);
    free(buf);
    maildir_free(again.md);
    maildir_free(e.md);
    return 0;
}

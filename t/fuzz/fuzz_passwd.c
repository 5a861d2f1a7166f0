/*
 * The Dovecot-style passwd-file (auth/passwd.c). Invariants: a lookup of
 * every parsed user finds that user's first line; parsed fields lie inside
 * the text; counts add up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const struct passwd_db *db, const char *p)
{
    return p >= db->text && p <= db->text + db->text_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    struct passwd_db db;
    passwd_db_init(&db, "/fuzz/passwd");
    db.text = malloc(size + 1);
    fuzz_check(db.text != NULL, "malloc");
    memcpy(db.text, data, size);
    db.text[size] = '\0';
    db.text_len = size;
    if (passwd_db_parse(&db) == 0) {
        fuzz_check(db.count == (size_t)db.stats.users, "user count disagrees");
        for (size_t i = 0; i < db.count; i++) {
            const struct passwd_entry *e = &db.entries[i];
            fuzz_check(e->user[0] != '\0', "an entry with an empty user name");
            fuzz_check(inside(&db, e->user) && inside(&db, e->password), "fields outside the text");
            const struct passwd_entry *found = passwd_db_lookup(&db, e->user);
            fuzz_check(found != NULL && strcmp(found->user, e->user) == 0,
                       "a parsed user is not found");
            fuzz_check(found == e, "a lookup found another entry of the same name");
            if (i > 0)
                fuzz_check(strcmp(db.entries[i - 1].user, e->user) != 0,
                           "a duplicate user survived");
        }
    }
    passwd_db_free(&db);
    return 0;
}

#include "daemon/router/route_pick.h"

#include <stdint.h>
#include <string.h>

#include "daemon/runtime/hash.h"

static int usable(const struct route_backend *b)
{
    return b->up && !b->draining;
}

/* hash(user NUL name): the NUL keeps ("ab", "c") apart from ("a", "bc"). */
static uint64_t score(const char *user, const char *name)
{
    char key[512];
    size_t ul = strlen(user), nl = strlen(name);
    if (ul + 1 + nl > sizeof(key))
        ul = sizeof(key) - 1 - nl;
    memcpy(key, user, ul);
    key[ul] = '\0';
    memcpy(key + ul + 1, name, nl);
    return hash64(key, ul + 1 + nl, HASH_SEED_A);
}

int route_pick(const char *user, const char *preferred, const struct route_backend *b, size_t n)
{
    if (preferred != NULL && preferred[0] != '\0') {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(b[i].name, preferred) == 0 && usable(&b[i]))
                return (int)i;
        }
    }
    int best = -1;
    uint64_t best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (!usable(&b[i]))
            continue;
        uint64_t s = score(user, b[i].name);
        /* Ties (not expected from a 64-bit hash) go to the first listed. */
        if (best < 0 || s > best_score) {
            best = (int)i;
            best_score = s;
        }
    }
    return best;
}

#include "maildir/uidl.h"

#include <stdint.h>
#include <string.h>

enum {
    HASH_PREFIX_MAX = MAILDIR_UIDL_MAX - 1 - 32, /* room for '/' + 32 hex */
};

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

static int needs_escape(unsigned char c)
{
    return c < 0x21 || c > 0x7E || c == ':' || c == '/';
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

static void put_hex64(char *out, uint64_t v)
{
    for (int i = 15; i >= 0; i--) {
        out[i] = hex_lower[v & 0xf];
        v >>= 4;
    }
}

/*
 * Escape into out, stopping before an escape would pass max characters.
 * Returns the characters written; *all tells whether the whole name fit.
 */
static size_t escape(const unsigned char *p, size_t n, char *out, size_t max, int *all)
{
    size_t o = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (!needs_escape(p[i])) {
            if (o + 1 > max)
                break;
            out[o++] = (char)p[i];
        } else {
            if (o + 3 > max)
                break;
            out[o++] = ':';
            out[o++] = hex_upper[p[i] >> 4];
            out[o++] = hex_upper[p[i] & 0xf];
        }
    }
    *all = i == n;
    return o;
}

int maildir_uidl(const char *unique, size_t len, char *uidl, size_t *uidl_len)
{
    const unsigned char *p = (const unsigned char *)unique;
    int all;

    /* Verbatim is the escaped form of a name that needed no escape. */
    size_t o = escape(p, len, uidl, MAILDIR_UIDL_MAX, &all);
    if (!all || len == 0) {
        o = escape(p, len, uidl, HASH_PREFIX_MAX, &all);
        uidl[o++] = '/';
        put_hex64(uidl + o, fnv1a64(p, len, 0xcbf29ce484222325ULL));
        put_hex64(uidl + o + 16, fnv1a64(p, len, 0x84222325cbf29ce4ULL));
        o += 32;
    }
    uidl[o] = '\0';
    *uidl_len = o;
    return 0;
}

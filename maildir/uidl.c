#include "maildir/uidl.h"

#include <stdint.h>
#include <string.h>

#include "daemon/runtime/hash.h"

enum {
    HASH_PREFIX_MAX = MAILDIR_UIDL_MAX - 1 - 32, /* room for '/' + 32 hex */
};

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

static int rfc1939_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7E;
}

static int needs_escape(unsigned char c)
{
    return !rfc1939_char(c) || c == ':' || c == '/';
}

int maildir_uidl_valid(const char *uidl, size_t len)
{
    if (len == 0 || len > MAILDIR_UIDL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!rfc1939_char((unsigned char)uidl[i]))
            return 0;
    }
    return 1;
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

int maildir_uidl_hashed(const char *unique, size_t len, unsigned round, char *uidl,
                        size_t *uidl_len)
{
    const unsigned char *p = (const unsigned char *)unique;
    int all;
    size_t o = escape(p, len, uidl, HASH_PREFIX_MAX, &all);
    uidl[o++] = '/';
    put_hex64(uidl + o, hash64(p, len, HASH_SEED_A + round));
    put_hex64(uidl + o + 16, hash64(p, len, HASH_SEED_B + round));
    o += 32;
    uidl[o] = '\0';
    *uidl_len = o;
    return 0;
}

int maildir_uidl(const char *unique, size_t len, char *uidl, size_t *uidl_len)
{
    const unsigned char *p = (const unsigned char *)unique;
    int all;

    /* Verbatim is the escaped form of a name that needed no escape. */
    size_t o = escape(p, len, uidl, MAILDIR_UIDL_MAX, &all);
    if (!all || len == 0)
        return maildir_uidl_hashed(unique, len, 0, uidl, uidl_len);
    uidl[o] = '\0';
    *uidl_len = o;
    return 0;
}

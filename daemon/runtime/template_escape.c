#include "template_escape.h"

#include "md5.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A modified value is built in a stack buffer: what is modified is a user
 * name, a home directory or a UIDL variable, all far shorter. A longer
 * value with modifiers is refused (-1), never cut.
 */
#define TEMPLATE_VALUE_MAX 4096

static int parse_number(const char **pp, unsigned long *out)
{
    unsigned long long n = 0;
    const char *s = *pp;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (unsigned long long)(*s - '0');
        if (n > TEMPLATE_NUMBER_MAX)
            return -1;
        s++;
    }
    *out = (unsigned long)n;
    *pp = s;
    return 0;
}

int template_escape_parse(const char *p, const char *modifiers_allowed,
                          struct template_escape *esc, const char **why)
{
    const char *s = p + 1;
    int negative = 0;
    size_t nmod = 0;

    memset(esc, 0, sizeof(*esc));
    if (*s == '-') {
        negative = 1;
        s++;
    }
    /* As in Dovecot: a leading 0 asks for padding, "%0.1n" is offset 0. */
    if (*s == '0') {
        esc->zero_pad = 1;
        s++;
    }
    if (parse_number(&s, &esc->width) == -1) {
        *why = "a number in the escape is too large";
        return -1;
    }
    if (*s == '.') {
        s++;
        esc->offset = negative ? -(long)esc->width : (long)esc->width;
        esc->width = 0;
        esc->zero_pad = 0;
        if (*s == '0') {
            esc->zero_pad = 1;
            s++;
        }
        if (*s == '-') {
            *why = "a negative width (%a.-b) is not supported";
            return -1;
        }
        if (parse_number(&s, &esc->width) == -1) {
            *why = "a number in the escape is too large";
            return -1;
        }
    }
    while (*s >= 'A' && *s <= 'Z') {
        if (strchr(modifiers_allowed, *s) == NULL) {
            *why = "unknown modifier (letters before the variable)";
            return -1;
        }
        if (nmod == TEMPLATE_MODIFIERS_MAX) {
            *why = "too many modifiers in one escape";
            return -1;
        }
        esc->modifiers[nmod++] = *s++;
    }
    if (*s == '\0') {
        *why = "the template ends with a lone % or inside a % escape";
        return -1;
    }
    esc->var = *s;
    if (esc->var == '%' && s != p + 1) {
        *why = "%% takes no width or modifier";
        return -1;
    }
    return (int)(s - p + 1);
}

void template_out_put(struct template_out *o, const char *s, size_t n)
{
    if (o->full || n >= o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Dovecot's older %H hash: the ELF (PJW) hash of the bytes, 32 bits. */
static uint32_t elf_hash(const char *s)
{
    uint32_t h = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h = (h << 4) + *p;
        uint32_t g = h & 0xf0000000u;
        if (g != 0) {
            h ^= g >> 24;
            h ^= g;
        }
    }
    return h;
}

/* Dovecot's %N: the MD5's first 8 bytes as a big-endian number. */
static int md5_number(const char *s, uint64_t *out)
{
    unsigned char d[MD5_DIGEST_LEN];
    if (md5_digest(s, strlen(s), d) == -1)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | d[i];
    *out = v;
    return 0;
}

/*
 * N and H: modulo the width, hex, zero-padded to the offset; both are then
 * used up. Dovecot prints the 64-bit MD5 number as an unsigned int: its low
 * 32 bits.
 */
static int put_hash(uint64_t v, long *offset, unsigned long *width, char *dst)
{
    char hex[24];
    if (*width != 0)
        v %= *width;
    int n = snprintf(hex, sizeof(hex), "%x", (unsigned int)(uint32_t)v);
    long pad = *offset > n ? *offset - n : 0;
    if (pad + n >= TEMPLATE_VALUE_MAX)
        return -1;
    memset(dst, '0', (size_t)pad);
    memcpy(dst + pad, hex, (size_t)n + 1);
    *offset = 0;
    *width = 0;
    return 0;
}

static int apply_modifier(char m, const char *v, char *dst, long *offset, unsigned long *width)
{
    static const char hexdigits[] = "0123456789abcdef";
    size_t len = strlen(v);
    uint64_t num;

    if (len >= TEMPLATE_VALUE_MAX)
        return -1;
    switch (m) {
    case 'L':
    case 'U':
        for (size_t i = 0; i <= len; i++)
            dst[i] = (char)(m == 'L' ? tolower((unsigned char)v[i]) : toupper((unsigned char)v[i]));
        return 0;
    case 'R':
        for (size_t i = 0; i < len; i++)
            dst[i] = v[len - 1 - i];
        dst[len] = '\0';
        return 0;
    case 'M': {
        unsigned char d[MD5_DIGEST_LEN];
        if (md5_digest(v, len, d) == -1)
            return -1;
        for (int i = 0; i < MD5_DIGEST_LEN; i++) {
            dst[2 * i] = hexdigits[d[i] >> 4];
            dst[2 * i + 1] = hexdigits[d[i] & 15];
        }
        dst[2 * MD5_DIGEST_LEN] = '\0';
        return 0;
    }
    case 'N':
        if (md5_number(v, &num) == -1)
            return -1;
        return put_hash(num, offset, width, dst);
    case 'H':
        return put_hash(elf_hash(v), offset, width, dst);
    case 'X': {
        char *end;
        if (len == 0 || strspn(v, "0123456789") != len)
            return -1;
        unsigned long long n = strtoull(v, &end, 10);
        snprintf(dst, TEMPLATE_VALUE_MAX, "%llx", n);
        return 0;
    }
    default:
        return -1;
    }
}

int template_escape_apply(const struct template_escape *esc, const char *value,
                          struct template_out *o)
{
    char work[2][TEMPLATE_VALUE_MAX];
    const char *v = value;
    long offset = esc->offset;
    unsigned long width = esc->width;

    for (size_t i = 0; esc->modifiers[i] != '\0'; i++) {
        char *dst = work[i & 1];
        if (apply_modifier(esc->modifiers[i], v, dst, &offset, &width) == -1)
            return -1;
        v = dst;
    }
    size_t len = strlen(v);
    if (offset < 0) {
        size_t from_end = (size_t)-offset;
        if (len > from_end)
            v += len - from_end;
    } else {
        size_t skip = (size_t)offset < len ? (size_t)offset : len;
        v += skip;
    }
    len = strlen(v);
    /* The padding loop stops at a full output: a width of 4e9 is refused, not spun. */
    for (size_t i = len; esc->zero_pad && i < width && !o->full; i++)
        template_out_put(o, "0", 1);
    if (width != 0 && width < len)
        len = width;
    template_out_put(o, v, len);
    return 0;
}

int template_expand_escapes(const char *fmt, const char *modifiers_allowed,
                            template_value_fn *value_of, void *arg, struct template_out *o)
{
    char scratch[TEMPLATE_SCRATCH_MAX];

    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            template_out_put(o, p, 1);
            continue;
        }
        struct template_escape esc;
        const char *why;
        int n = template_escape_parse(p, modifiers_allowed, &esc, &why);
        if (n == -1) {
            errno = EINVAL;
            return -1;
        }
        p += n - 1;
        const char *value = "%";
        if (esc.var != '%' && value_of(arg, esc.var, &value, scratch) == -1)
            return -1;
        if (template_escape_apply(&esc, value, o) == -1) {
            errno = EINVAL;
            return -1;
        }
    }
    return 0;
}

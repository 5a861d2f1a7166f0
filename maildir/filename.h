/*
 * Maildir file names: "<unique>[:2,<flags>]", where the unique part may
 * carry Dovecot/Courier size hints, e.g.
 *   1700000000.M12P34.host,S=1234,W=1260:2,RS
 * Parsing never fails and allocates nothing; it only reads the name.
 *
 * Caveats:
 *  - The size hints come from whoever delivered the file. ,W= is the CRLF
 *    size and the caller may trust it; ,S= is the on-disk size and is a hint.
 *  - Pointers in struct maildir_name point into the parsed name.
 */
#ifndef FASTPOP_MAILDIR_FILENAME_H
#define FASTPOP_MAILDIR_FILENAME_H

#include <stddef.h>
#include <stdint.h>

struct maildir_name {
    size_t      unique_len;  /* bytes before the first ':' (all, without one) */
    uint64_t    timestamp;   /* leading decimal digits; 0 without any */
    uint64_t    size_s;      /* ,S=<n>; meaningful only if has_size_s */
    uint64_t    size_w;      /* ,W=<n>; meaningful only if has_size_w */
    int         has_size_s;
    int         has_size_w;
    const char *flags;       /* letters after ":2,"; NULL without ":2," */
    size_t      flags_len;   /* up to the end or the first ',' */
};

/*
 * Parse a base name (no directory part) into *out.
 *
 * The timestamp is the run of leading digits, like Courier's atol() (so
 * "123abc.x" gives 123, "x.y" gives 0); it saturates at UINT64_MAX.
 * A size hint is a comma-separated field of the unique part that is exactly
 * "S=" or "W=" followed by 1-20 digits that fit in 64 bits; anything else
 * ("S=", "S=12k", an overflow) leaves it unknown. The first valid field wins.
 */
void maildir_name_parse(const char *name, struct maildir_name *out);

/* Length of the unique part of name: the bytes before the first ':'. */
size_t maildir_unique_len(const char *name);

/*
 * Write into out (outsz bytes, NUL-terminated) the name a file from new/
 * takes in cur/: name + ":2," when it has no ':', else name unchanged
 * (an existing ":2,<flags>" or any other info is kept).
 *
 * Returns 0, or -1 with errno ERANGE when out is too small.
 */
int maildir_name_for_cur(const char *name, char *out, size_t outsz);

/*
 * Write into out (outsz bytes, NUL-terminated) name with flag set:
 *  - no ':'           -> name + ":2," + flag
 *  - ":2,<letters>"   -> flag inserted before the first greater letter, so
 *                        ASCII-sorted flags stay sorted; nothing changes if
 *                        the flag is already there; a ",<extra>" part after
 *                        the letters (Dovecot) is kept
 *  - any other info   -> unchanged (its meaning is not ours to edit)
 * Callers compare out with name to know whether a rename is needed.
 *
 * flag must be a letter (A-Z, a-z).
 * Returns 0, or -1 with errno EINVAL (bad flag) or ERANGE (out too small).
 */
int maildir_name_with_flag(const char *name, char flag, char *out, size_t outsz);

#endif

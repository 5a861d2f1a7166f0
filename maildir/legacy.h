/*
 * UIDL continuity after a migration: the UIDLs (and, for Dovecot, the
 * order) that Courier or Dovecot served for the messages they knew, read
 * from the files they left in the maildir root. Both files are only ever
 * read here, never written, so the old server can take the mailbox back.
 *
 *  - courierpop3dsizelist (maildir/legacy_courier.h): v0 (no header), /1,
 *    /2, /3. UIDLs `UID<n>-<uidv>`, `UID<n>`, or the escaped file name,
 *    decided per record. Courier's order is fastpop's own (scan.h step 5).
 *  - dovecot-uidlist (maildir/legacy_dovecot.h): v1 and v3. UIDL = the
 *    record's P field, else the site's pop3_uidl_format (setting
 *    dovecot_uidl_format, default Dovecot's %08Xu%08Xv: lower-case hex of
 *    uid, then uidvalidity). Order: records with O by
 *    O, then the other records by uid.
 *  - Messages in neither file (mail delivered after the switch) keep
 *    fastpop's own UIDL and come after every legacy message (Dovecot) or
 *    in name order among them (Courier).
 *  - When both files exist, the one modified last wins: it belongs to the
 *    server that ran last (a Courier -> Dovecot migration leaves both).
 *
 * Sizes are never taken from these files: what they stored is what the
 * old server computed (Courier 1.0.16 is 2 octets short for a missing
 * final newline), and fastpop announces what its own RETR sends.
 *
 * Caveat: the result depends only on the maildir's names and these files,
 * so a lost index gives back the same UIDLs.
 */
#ifndef FASTPOP_MAILDIR_LEGACY_H
#define FASTPOP_MAILDIR_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include "maildir/scan.h"

#define LEGACY_COURIER_FILE "courierpop3dsizelist"
#define LEGACY_DOVECOT_FILE "dovecot-uidlist"

/* Files larger than this are not a real list; refused rather than read. */
enum { LEGACY_MAX_FILE = 256 * 1024 * 1024 };

enum legacy_kind { LEGACY_NONE, LEGACY_COURIER, LEGACY_DOVECOT };
/*
 * Or-ed into an index record's legacy kind: its UIDLs were chosen with
 * X-UIDL headers read (maildir/xuidl.h), so a later sync may reuse them.
 */
enum { LEGACY_XUIDL_FLAG = 0x100, LEGACY_KIND_MASK = 0xff };

struct legacy_rec {
    uint32_t name_off;   /* unique part of the recorded name (up to ':') */
    uint32_t uidl_off;
    uint16_t name_len;
    uint16_t uidl_len;
    uint8_t  has_order;  /* Dovecot O field */
    uint64_t order;      /* O value, if has_order */
    uint64_t uid;        /* Dovecot uid; Courier counter (0: file-name UIDL) */
};

struct legacy_list {
    enum legacy_kind kind;
    int version;                /* 0-3 for Courier, 1 or 3 for Dovecot */
    struct legacy_rec *recs;    /* sorted by name once complete */
    size_t count, cap;
    char *strings;
    size_t strings_len, strings_cap;
};

/*
 * Read the legacy file of the maildir open as rootfd, if any, into *out
 * (NULL when there is none or it is not one these servers would read).
 * Returns 0, or -1 with errno from open/read, ENOMEM, EFBIG.
 */
int legacy_load(int rootfd, struct legacy_list **out);

/*
 * Give every message of md that the list knows its legacy UIDL, and put md
 * in the old server's order (see above). md must be in scan order. A
 * message the list does not know whose own UIDL some record uses gets its
 * hashed form instead (maildir/uidl.h), so no UIDL names two messages.
 * Returns 0, or -1 with errno ENOMEM/EOVERFLOW (md is then still valid,
 * possibly with some UIDLs changed).
 */
int legacy_apply(const struct legacy_list *lg, struct maildir *md);

/* The record for the unique name [name, name+len), or NULL. */
const struct legacy_rec *legacy_find(const struct legacy_list *lg, const char *name,
                                     size_t len);
const char *legacy_rec_name(const struct legacy_list *lg, const struct legacy_rec *r);
const char *legacy_rec_uidl(const struct legacy_list *lg, const struct legacy_rec *r);

void legacy_free(struct legacy_list *lg);

/*
 * Process-wide, set once at start from the configuration (workers, popctl)
 * before any maildir is read: dovecot_uidl_format (maildir/uidl_format.h;
 * NULL keeps the default, Dovecot's) and x_uidl_header (maildir/xuidl.h).
 * The string is copied; one that does not fit keeps the default and
 * returns -1 (the config's limit is smaller).
 */
int legacy_configure(const char *dovecot_uidl_format, int x_uidl_header);
const char *legacy_dovecot_uidl_format(void);
int legacy_x_uidl_header(void);

/* For the parsers: an empty list of this kind, add a record, sort. */
struct legacy_list *legacy_new(enum legacy_kind kind, int version);
/* Returns 0, or -1 with errno ENOMEM, EOVERFLOW, EINVAL (empty/too long). */
int legacy_add(struct legacy_list *lg, const char *name, size_t name_len, const char *uidl,
               size_t uidl_len, uint64_t uid, int has_order, uint64_t order);
/*
 * Sort by name; of two records with one name the first one added wins, and
 * of two with one UIDL too (a UIDL names one message within the mailbox).
 * Returns 0, or -1 with errno ENOMEM.
 */
int legacy_finish(struct legacy_list *lg);
/* One record line [line, end) into lg: 0 (a line it cannot read is skipped), or -1 to give up. */
typedef int legacy_line_fn(struct legacy_list *lg, const void *arg, const char *line,
                           const char *end);
/*
 * Each non-empty line of [p, end) through parse (with arg), then
 * legacy_finish(): 0 with *out = lg, or -1 with lg freed.
 */
int legacy_parse_lines(struct legacy_list *lg, const char *p, const char *end,
                       legacy_line_fn *parse, const void *arg, struct legacy_list **out);

/* Parsers (one file each): the whole file is in buf[0..len). */
int legacy_courier_parse(const char *buf, size_t len, struct legacy_list **out);
int legacy_dovecot_parse(const char *buf, size_t len, struct legacy_list **out);

#endif

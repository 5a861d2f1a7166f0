/*
 * RETR/TOP body streamer: turns the bytes of a message file into a POP3
 * multi-line response body, chunk by chunk, carrying its state across
 * chunk boundaries of any size (a CR ending one chunk and its LF starting
 * the next, a '.' at a boundary, the header/body split across chunks).
 *
 * Output rules (the size rules of maildir/size.h, plus dot-stuffing):
 *  - a LF not preceded by CR is sent as CRLF; CRLF is sent as is;
 *  - a CR not followed by LF is sent as is;
 *  - a line starting with '.' gets one more '.', the first line included;
 *  - at the end, a last line without LF gets CRLF, or only LF after a final
 *    CR; then ".\r\n" ends the response. An empty file sends only ".\r\n".
 * TOP sends every header line, the empty line that ends the headers, then
 * at most top_lines body lines. A message with no empty line is all
 * headers, sent whole with no empty line added: TOP output is always a
 * prefix of RETR output.
 *
 * Usage: maildir_stream_init(); then, per chunk read from the file,
 * maildir_stream_feed() until it has consumed the chunk, flushing out
 * whenever it reaches high_water; stop reading when maildir_stream_done()
 * says TOP has all its lines; at end of file, maildir_stream_finish().
 */
#ifndef FASTPOP_MAILDIR_STREAM_H
#define FASTPOP_MAILDIR_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/buf.h"

enum maildir_stream_mode {
    MAILDIR_STREAM_RETR,
    MAILDIR_STREAM_TOP,
};

/*
 * Workarounds for clients that break on valid input, as Dovecot's
 * pop3_workarounds of the same names (off unless asked for):
 *  - NO_NULS: a NUL byte is sent as 0x80 (Outlook stops reading a message
 *    at a NUL). One octet for one: sizes do not change.
 *  - ADD_EOH: TOP of a message that has no empty line ends its headers
 *    with one (Outlook Express and Netscape wait for it). TOP output is
 *    then RETR's plus "\r\n", no longer a prefix of it.
 */
enum maildir_stream_workaround {
    MAILDIR_STREAM_NO_NULS = 1,
    MAILDIR_STREAM_ADD_EOH = 2,
};

/* Plain data so a connection can embed it; touch it only through the API. */
struct maildir_stream {
    uint64_t      octets;    /* sent, without stuffing dots and ".\r\n" */
    uint64_t      body_left; /* TOP: body lines still to send */
    unsigned char top;       /* mode is MAILDIR_STREAM_TOP */
    unsigned char bol;       /* the next byte starts a line */
    unsigned char prev_cr;   /* the last byte fed was a CR */
    unsigned char line_len;  /* bytes of the current line, saturates at 2 */
    unsigned char in_body;   /* TOP: the headers have ended */
    unsigned char done;      /* TOP: every wanted line has been sent */
    unsigned char no_nuls;   /* MAILDIR_STREAM_NO_NULS */
    unsigned char add_eoh;   /* MAILDIR_STREAM_ADD_EOH */
};

/* top_lines is the TOP line count; RETR ignores it. */
void maildir_stream_init(struct maildir_stream *st, enum maildir_stream_mode mode,
                         uint64_t top_lines);

/* Turn on workarounds (enum maildir_stream_workaround), after init. */
void maildir_stream_workarounds(struct maildir_stream *st, unsigned flags);

/*
 * Convert bytes from in[0..n) and append them to out, until all are
 * consumed or buf_len(out) reaches high_water (backpressure: flush out,
 * then feed the rest, in + *consumed). Once TOP is done, every byte is
 * consumed and dropped. The count of input bytes used goes to *consumed.
 *
 * Returns 0, or -1 with errno EINVAL (high_water is 0) or from buf_reserve
 * (ENOBUFS, ENOMEM); *consumed is then still right and the state is
 * consistent, so the call may be retried.
 * Caveats: out may end up to 1 octet past high_water, so its limit must be
 * at least high_water + 1. When out already holds high_water octets,
 * nothing is consumed.
 */
int maildir_stream_feed(struct maildir_stream *st, const char *in, size_t n,
                        struct buf *out, size_t high_water, size_t *consumed);

/*
 * Append the end of line a last unterminated line needs, then ".\r\n".
 * Call once, at end of file or once maildir_stream_done().
 * Returns 0, or -1 with errno from buf_append() (nothing appended).
 */
int maildir_stream_finish(struct maildir_stream *st, struct buf *out);

/* 1 when TOP has sent all it will: stop reading the file. 0 otherwise. */
int maildir_stream_done(const struct maildir_stream *st);

/*
 * Octets sent so far without stuffing dots and the final ".\r\n". After
 * maildir_stream_finish() on a RETR it equals the message's POP3 size
 * (maildir/size.h): a mismatch with the announced size means the file
 * changed under us.
 */
uint64_t maildir_stream_octets(const struct maildir_stream *st);

#endif

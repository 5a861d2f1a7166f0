#include "maildir/stream.h"

#include <errno.h>
#include <string.h>

void maildir_stream_init(struct maildir_stream *st, enum maildir_stream_mode mode,
                         uint64_t top_lines)
{
    memset(st, 0, sizeof(*st));
    st->top = mode == MAILDIR_STREAM_TOP;
    st->body_left = top_lines;
    st->bol = 1;
}

void maildir_stream_workarounds(struct maildir_stream *st, unsigned flags)
{
    st->no_nuls = (flags & MAILDIR_STREAM_NO_NULS) != 0;
    st->add_eoh = (flags & MAILDIR_STREAM_ADD_EOH) != 0;
}

static void replace_nuls(char *p, size_t n)
{
    char *end = p + n;
    while ((p = memchr(p, '\0', (size_t)(end - p))) != NULL)
        *p++ = (char)0x80;
}

static void end_of_line(struct maildir_stream *st)
{
    int empty = st->line_len == 0 || (st->line_len == 1 && st->prev_cr);

    st->bol = 1;
    st->prev_cr = 0;
    st->line_len = 0;
    if (!st->top)
        return;
    if (st->in_body) {
        st->body_left--;
    } else if (empty) {
        st->in_body = 1;
    }
    if (st->in_body && st->body_left == 0)
        st->done = 1;
}

/*
 * Convert in[0..n) into w, which has room for 2 * n octets (the worst
 * case: ".\n" becomes "..\r\n"). Stops early only when TOP is done.
 * Returns the input bytes used; *wrote gets the octets written.
 */
static size_t convert(struct maildir_stream *st, const char *in, size_t n,
                      char *w, size_t *wrote)
{
    size_t i = 0;
    size_t o = 0;

    while (i < n && !st->done) {
        if (st->bol && in[i] == '.')
            w[o++] = '.';
        const char *lf = memchr(in + i, '\n', n - i);
        size_t seg = lf ? (size_t)(lf - (in + i)) : n - i;
        if (seg > 0) {
            memcpy(w + o, in + i, seg);
            if (st->no_nuls)
                replace_nuls(w + o, seg);
            o += seg;
            st->octets += seg;
            st->prev_cr = in[i + seg - 1] == '\r';
            size_t len = st->line_len + seg;
            st->line_len = len > 2 ? 2 : (unsigned char)len;
            st->bol = 0;
            i += seg;
        }
        if (lf == NULL)
            break;
        if (!st->prev_cr) {
            w[o++] = '\r';
            st->octets++;
        }
        w[o++] = '\n';
        st->octets++;
        i++;
        end_of_line(st);
    }
    *wrote = o;
    return i;
}

int maildir_stream_feed(struct maildir_stream *st, const char *in, size_t n,
                        struct buf *out, size_t high_water, size_t *consumed)
{
    size_t i = 0;

    *consumed = 0;
    if (high_water == 0) {
        errno = EINVAL;
        return -1;
    }
    while (i < n && !st->done && buf_len(out) < high_water) {
        /* 2 * take <= room + 1: the most out can pass high_water by. */
        size_t room = high_water - buf_len(out);
        size_t take = (room + 1) / 2;
        if (take > n - i)
            take = n - i;
        if (buf_reserve(out, 2 * take) == -1) {
            *consumed = i;
            return -1;
        }
        size_t wrote;
        i += convert(st, in + i, take, buf_wptr(out), &wrote);
        buf_commit(out, wrote);
    }
    /* Bytes after TOP's last line are not wanted: take them all. */
    *consumed = st->done ? n : i;
    return 0;
}

int maildir_stream_finish(struct maildir_stream *st, struct buf *out)
{
    char tail[7];
    size_t t = 0;

    if (!st->bol) {
        if (!st->prev_cr)
            tail[t++] = '\r';
        tail[t++] = '\n';
    }
    /*
     * TOP of a message with no empty line: the headers never ended. A last
     * line that is a lone CR is an empty line too (end_of_line's rule).
     */
    int last_empty = !st->bol && st->line_len == 1 && st->prev_cr;
    if (st->top && st->add_eoh && !st->in_body && !last_empty) {
        tail[t++] = '\r';
        tail[t++] = '\n';
    }
    size_t eol = t;
    memcpy(tail + t, ".\r\n", 3);
    t += 3;
    if (buf_append(out, tail, t) == -1)
        return -1;
    st->octets += eol;
    st->bol = 1;
    st->prev_cr = 0;
    return 0;
}

int maildir_stream_done(const struct maildir_stream *st)
{
    return st->done;
}

uint64_t maildir_stream_octets(const struct maildir_stream *st)
{
    return st->octets;
}

"""Real POP3 clients against the real fastpopd on loopback: curl, fetchmail,
getmail6 and Python's poplib. Every test checks the bytes a client fetched
against the files in the user's maildir.

What each client does to a message, and so how the expected bytes are
derived from a maildir file F (pop3_size(F) = F with every line ended by
CRLF, a final CRLF added when missing: what RETR carries before stuffing):

  curl     RETR/TOP output is the message as sent, dot-stuffing removed, the
           final ".CRLF" removed, CRLFs kept: exactly pop3_size(F). LIST and
           UIDL output are the response lines verbatim, CRLF-terminated.
  poplib   retr()/top() return the lines without their CRLF, a leading ".."
           turned into "." (Python docs / poplib._getlongresp): so
           b"\\r\\n".join(lines) + b"\\r\\n" == pop3_size(F), and the octet count
           it returns is len(pop3_size(F)).
  fetchmail  with an MDA, "stripcr" is on by default (fetchmail(1): "it
           defaults to 'on' (CR stripping enabled) when there is an MDA
           declared"), so the MDA gets LF line ends: pop3_size(F) with CRLF
           -> LF. It prepends one "Received:" field (fetchmail(1), --invisible
           turns it off); "no rewrite" stops it editing address headers.
  getmail6 delivers with the platform line end (Message.flatten(): "Return a
           string with native EOL convention"): CRLF -> LF. It prepends
           "Return-Path: <unknown>", "Delivered-To: unknown" and a "Received:"
           field naming the POP3 UIDL ("msgid:UIDL"); documented options
           delivered_to/received, Return-Path always. Its email-package round
           trip re-folds headers over 78 columns and encodes 8-bit header
           bytes, so the corpus keeps headers short and ASCII; bodies carry
           the 8-bit bytes.

Test messages have no bare CR (both LF normalizations would be ambiguous).
"""
import grp
import os
import poplib
import pwd
import re
import shutil
import subprocess
import tempfile

from fastpop_harness import (IS_ROOT, MAIL_USER, MAIL_GROUP, DaemonTest, pop3_size, main)

USER = "alice"
PASSWORD = "alice-secret"
CLIENT_TIMEOUT = 60
BASE_TS = 1700000000


# --- corpus -------------------------------------------------------------------

def big_message(target=2 * 1024 * 1024):
    """~2 MB, LF line ends, many lines starting with '.', some exactly '.',
    8-bit bytes; every line well under poplib's 2048-octet line limit."""
    parts = [b"From: big@example.org\nTo: alice@example.org\n"
             b"Subject: two megabytes\n\n"]
    size = len(parts[0])
    i = 0
    while size < target:
        if i % 37 == 0:
            line = b"."
        elif i % 41 == 0:
            line = b".. double dot %06d" % i
        elif i % 43 == 0:
            line = b"." + b"x" * (i % 70)
        elif i % 47 == 0:
            line = b"caf\xe9 na\xefve \xff\xfe\x80 %06d" % i
        elif i % 53 == 0:
            line = b""
        else:
            line = b"%06d the quick brown fox jumps over the lazy dog .. . .%03d" % (i, i % 997)
        parts.append(line + b"\n")
        size += len(line) + 1
        i += 1
    # End with a dot line and no final newline.
    parts.append(b".the end")
    return b"".join(parts)


def dot_dense_message(target=400 * 1024):
    """Nothing but short dot lines, LF and CRLF, in a 13-octet cycle: every
    file offset modulo 13 starts a line or holds a CR before its LF, so the
    server's read chunks (whatever their power-of-two size) end at every
    kind of place: before a '.', between CR and LF, inside a stuffed line."""
    head = b"From: dots@example.org\nTo: alice@example.org\nSubject: dense dots\n\n"
    cycle = b".\n..\n.\r\n...x\n"
    return head + cycle * ((target - len(head)) // len(cycle)) + b"."


CORPUS = [
    # LF ends (as MDAs write them), dot lines of every kind.
    b"From: one@example.org\nTo: alice@example.org\nSubject: dots\n\n"
    b"body line\n.leading dot\n.\n..two dots\n...\n. space\nend\n",
    # CRLF ends, no final newline, last line exactly '.'.
    b"From: two@example.org\r\nTo: alice@example.org\r\nSubject: crlf\r\n\r\n"
    b"first\r\n\r\n.",
    # 8-bit bytes in the body, LF ends.
    b"From: three@example.org\nTo: alice@example.org\nSubject: eight bit\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n\n"
    b"na\xefve caf\xe9 \xe4\xf6\xfc\xdf\n\xff\xfe\x80\x81 invalid utf-8 \xc3\x28\n",
    # Mixed LF/CRLF, no final newline, last line starts with a dot.
    b"From: four@example.org\nTo: alice@example.org\r\nSubject: mixed\n\r\n"
    b"lf line\ncrlf line\r\n.dot crlf\r\n.\n..\r\n.last line",
    big_message(),
    dot_dense_message(),
]


# Message 3 gets a unique name with a space and UTF-8 bytes: its UIDL is the
# escaped form (maildir/uidl.h), which the clients must track like any other.
ODD_HOST = {2: b"fastpop e2e-\xc3\xa9".decode("utf-8", "surrogateescape")}


def deliver_corpus(d, corpus=CORPUS, first=0, odd_host=ODD_HOST):
    """Deliver with increasing timestamps, so POP3 order is delivery order
    (fastpopd sorts by the leading timestamp of the name). Returns the
    unique names in order."""
    names = []
    for i, data in enumerate(corpus):
        name = "%d.M%dP%d.%s" % (BASE_TS + first + i, first + i, os.getpid(),
                                 odd_host.get(i, "fastpop-e2e"))
        d.deliver(USER, data, name=name)
        names.append(name)
    return names


# --- helpers (candidates for the harness) ---------------------------------------

def maildir_files(d, user):
    """{unique name: bytes} of every message file of user, wherever it is
    (new/ or cur/, with or without ':2,...' info)."""
    root = d.maildir(user)
    out = {}
    for rel in d.messages(user):
        with open(os.path.join(root, rel), "rb") as f:
            out[os.path.basename(rel).split(":", 1)[0]] = f.read()
    return out


def uidl(unique):
    """The UIDL fastpopd derives from a unique name (maildir/uidl.h, forms 1
    and 2 only: verbatim, or bytes outside 0x21-0x7E and ':' '/' as ':XX')."""
    raw = unique.encode("utf-8", "surrogateescape")
    out = "".join(chr(b) if 0x21 <= b <= 0x7E and b not in b":/" else ":%02X" % b
                  for b in raw)
    assert len(out) <= 70, "hashed form not modelled: %r" % unique
    return out


def crlf_to_lf(data):
    return data.replace(b"\r\n", b"\n")


def header_part(wire):
    """TOP n 0 of a message in wire form: the header and the blank line."""
    end = wire.find(b"\r\n\r\n")
    return wire if end < 0 else wire[:end + 4]


def split_leading_fields(data, eol=b"\n"):
    """The leading header fields of data as [(name, raw bytes incl. folded
    continuation lines)], and the rest."""
    fields = []
    pos = 0
    lines = data.split(eol)
    while pos < len(lines) and lines[pos] and lines[pos][:1] not in (b" ", b"\t"):
        line = lines[pos]
        if b":" not in line:
            break
        raw = [line]
        pos += 1
        while pos < len(lines) and lines[pos][:1] in (b" ", b"\t"):
            raw.append(lines[pos])
            pos += 1
        fields.append((line.split(b":", 1)[0].decode("latin-1"), eol.join(raw) + eol))
    return fields, eol.join(lines[pos:])


def strip_added_fields(data, names):
    """Remove the fields a client prepended: exactly names, in that order,
    at the very top. Returns (the fields' raw bytes, the rest)."""
    fields, _ = split_leading_fields(data)
    got = [n for n, _ in fields[:len(names)]]
    if [n.lower() for n in got] != [n.lower() for n in names]:
        raise AssertionError("expected leading fields %r, got %r in %r" %
                             (names, got, data[:400]))
    raw = [r for _, r in fields[:len(names)]]
    return raw, data[sum(len(r) for r in raw):]


def run(argv, env=None, timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL):
    try:
        return subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s timed out after %ss; stderr: %r" %
                             (argv[0], timeout, e.stderr))


def client_env(home):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": home, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    return env


def require(tool):
    path = shutil.which(tool)
    if path is None:
        raise AssertionError("%s is not installed (t/tools/setup-host.sh installs it)" % tool)
    return path


class ClientTest(DaemonTest):
    """A daemon with the corpus delivered to alice, plus a scratch directory
    for the client (searchable by the mail user)."""

    corpus = CORPUS

    def setUp(self):
        super().setUp()
        self.names = deliver_corpus(self.d, self.corpus)
        self.sent = dict(zip(self.names, self.corpus))
        # The files as they are on disk are what the server must serve.
        self.assertEqual(maildir_files(self.d, USER), self.sent)
        self.work = tempfile.mkdtemp(prefix="client-", dir=self.d.dir)
        os.chmod(self.work, 0o755)
        self.d.start()

    def wire(self, name):
        return pop3_size(maildir_files(self.d, USER)[name])


# --- curl -----------------------------------------------------------------------

class Curl(ClientTest):

    def curl(self, path="", *args, password=PASSWORD):
        url = "pop3://%s:%s@127.0.0.1:%d/%s" % (USER, password, self.d.port, path)
        return run([require("curl"), "-q", "-s", "-S", "--max-time", "30"] + list(args) + [url],
                   env=client_env(self.work))

    def test_list(self):
        r = self.curl()
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = b"".join(b"%d %d\r\n" % (i + 1, len(self.wire(n)))
                            for i, n in enumerate(self.names))
        self.assertEqual(r.stdout, expected)

    def test_retr_every_message(self):
        for i, name in enumerate(self.names):
            r = self.curl(str(i + 1))
            self.assertEqual(r.returncode, 0, r.stderr)
            # curl removes the dot-stuffing and the terminating ".CRLF" only.
            self.assertEqual(r.stdout, self.wire(name), "message %d (%s)" % (i + 1, name))
        # Reading changes nothing on disk but the new/ -> cur/ move.
        self.assertEqual(maildir_files(self.d, USER), self.sent)
        self.assertTrue(all(m.startswith("cur/") for m in self.d.messages(USER)))

    def test_uidl(self):
        r = self.curl("", "-X", "UIDL")
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = b"".join(b"%d %s\r\n" % (i + 1, uidl(n).encode())
                            for i, n in enumerate(self.names))
        self.assertEqual(r.stdout, expected)
        self.assertIn(b" 1700000002.M2P%d.fastpop:20e2e-:C3:A9\r\n" % os.getpid(), r.stdout)

    def test_top(self):
        for i, name in enumerate(self.names):
            r = self.curl("", "-X", "TOP %d 0" % (i + 1))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, header_part(self.wire(name)), "TOP %d 0" % (i + 1))
        # TOP 1 4: the header, the blank line and 4 body lines (dot lines included).
        r = self.curl("", "-X", "TOP 1 4")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, header_part(self.wire(self.names[0])) +
                         b"body line\r\n.leading dot\r\n.\r\n..two dots\r\n")

    def test_long_lines(self):
        # Lines far longer than any read chunk, starting with '.', and a CR
        # that is the last byte of a long line; poplib (2048-octet lines)
        # and getmail could not take these, curl can.
        data = (b"From: long@example.org\nSubject: long lines\n\n" +
                b"." + b"a" * 100000 + b"\n" +
                b"." * 16384 + b"\r\n" +
                b"b" * 16383 + b"\r\n.\n" +
                b"." + b"c" * 70000)
        name = deliver_corpus(self.d, [data], first=200)[0]
        r = self.curl(str(len(self.names) + 1))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, pop3_size(data))
        self.assertEqual(maildir_files(self.d, USER)[name], data)

    def test_dele_removes_file(self):
        # -I (no body): curl sends the command, expects no multi-line answer, QUITs.
        r = self.curl("", "-X", "DELE 2", "-I")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(maildir_files(self.d, USER),
                         {n: v for n, v in self.sent.items() if n != self.names[1]})

    def test_wrong_password(self):
        r = self.curl("", password="not-the-password")
        self.assertEqual(r.returncode, 67, "curl exit code: want 67 (login denied); stderr %r"
                         % r.stderr)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(maildir_files(self.d, USER), self.sent)


# --- fetchmail ----------------------------------------------------------------

MDA_SCRIPT = """#!/bin/sh
# One file per message, numbered in delivery order (fetchmail runs the MDA
# once per message, one at a time).
set -e
n=$(ls "%(out)s" | wc -l)
exec cat > "%(out)s/$(printf %%05d "$n")"
"""


def make_mda(work):
    """fetchmail's delivery script: each message into work/out, in order. (out, script)"""
    out = os.path.join(work, "out")
    os.mkdir(out)
    mda = os.path.join(work, "mda.sh")
    with open(mda, "w") as f:
        f.write(MDA_SCRIPT % {"out": out})
    os.chmod(mda, 0o755)
    return out, mda


class Fetchmail(ClientTest):

    def setUp(self):
        super().setUp()
        self.out, self.mda = make_mda(self.work)
        self.idfile = os.path.join(self.work, "fetchids")
        self.local = pwd.getpwuid(os.getuid()).pw_name

    def rcfile(self, password=PASSWORD):
        path = os.path.join(self.work, "fetchmailrc")
        # sslproto '': no TLS. fastpopd has none yet, and fetchmail >= 6.4
        # otherwise insists on STLS even when CAPA does not offer it.
        text = ('set no syslog\n'
                'poll 127.0.0.1 service %d protocol pop3 uidl\n'
                '  user "%s" password "%s" is "%s" here\n'
                '  options keep no rewrite sslproto ""\n'
                '  mda "%s"\n' % (self.d.port, USER, password, self.local, self.mda))
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)  # fetchmail refuses a group/world-readable rc file
        return path

    def fetchmail(self, *args, password=PASSWORD):
        r = run([require("fetchmail"), "-f", self.rcfile(password), "--nodetach", "--nosyslog",
                 "-v", "-i", self.idfile, "--pidfile", os.path.join(self.work, "pid")]
                + list(args), env=dict(client_env(self.work), FETCHMAILHOME=self.work))
        self.transcript = (r.stdout + r.stderr).decode(errors="replace")
        return r

    def delivered(self):
        msgs = []
        for n in sorted(os.listdir(self.out)):
            with open(os.path.join(self.out, n), "rb") as f:
                msgs.append(f.read())
        return msgs

    def take_delivered(self):
        msgs = self.delivered()
        for n in os.listdir(self.out):
            os.unlink(os.path.join(self.out, n))
        return msgs

    def check_delivered(self, got, names):
        """got (in delivery order) are the messages names, with fetchmail's
        Received field first and LF line ends."""
        self.assertEqual(len(got), len(names), self.transcript[-3000:])
        files = maildir_files(self.d, USER)
        for data, name in zip(got, names):
            (received,), rest = strip_added_fields(data, ["Received"])
            self.assertRegex(received, rb"^Received: from 127\.0\.0\.1 \[127\.0\.0\.1\]\n"
                                       rb"\tby .* with POP3 \(fetchmail-[0-9.]+\)\n")
            self.assertEqual(rest, crlf_to_lf(pop3_size(files[name])), "message %s" % name)
        self.assertNotIn("not the expected length", self.transcript)

    def test_keep_uidl_then_delete(self):
        # 1. Everything, once, left on the server.
        r = self.fetchmail()
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.check_delivered(self.take_delivered(), self.names)
        self.assertEqual(sorted(maildir_files(self.d, USER)), sorted(self.names))
        with open(self.idfile) as f:
            ids = f.read()
        for name in self.names:
            self.assertIn(" %s\n" % uidl(name), ids)

        # 2. UIDL tracking: nothing is new. Exit code 1 = no mail.
        r = self.fetchmail()
        self.assertEqual(r.returncode, 1, self.transcript[-3000:])
        self.assertEqual(self.delivered(), [])

        # 3. One new delivery: exactly that one.
        extra = b"From: late@example.org\nSubject: late\n\n.\n..\nlate body\n"
        new_name = deliver_corpus(self.d, [extra], first=100)[0]
        self.sent[new_name] = extra
        r = self.fetchmail()
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.check_delivered(self.take_delivered(), [new_name])

        # 4. --nokeep --fetchall: all fetched again and deleted; the files are
        # gone once fetchmail has its QUIT answer (RFC 1939 section 6).
        files = maildir_files(self.d, USER)
        r = self.fetchmail("--nokeep", "--fetchall")
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        got = self.delivered()
        self.assertEqual(len(got), len(self.names) + 1)
        for data, name in zip(got, self.names + [new_name]):
            _, rest = strip_added_fields(data, ["Received"])
            self.assertEqual(rest, crlf_to_lf(pop3_size(files[name])), name)
        self.assertIn("+OK Logging out, %d messages deleted" % (len(self.names) + 1),
                      self.transcript)
        self.assertEqual(self.d.messages(USER), [])

    def test_wrong_password(self):
        r = self.fetchmail(password="not-the-password")
        # PS_AUTHFAIL = 3 (fetchmail(1), EXIT CODES).
        self.assertEqual(r.returncode, 3, self.transcript[-3000:])
        self.assertIn("-ERR [AUTH]", self.transcript)
        self.assertEqual(self.delivered(), [])
        self.assertEqual(maildir_files(self.d, USER), self.sent)


# --- getmail6 ---------------------------------------------------------------------

class Getmail(ClientTest):

    def setUp(self):
        super().setUp()
        self.dest = os.path.join(self.work, "dest")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.dest, sub))
        self.gmdir = os.path.join(self.work, "getmail")
        os.mkdir(self.gmdir)
        self.rc = os.path.join(self.work, "getmailrc")
        # getmail refuses to deliver to a maildir as root: as root it
        # delivers as the mail user, who then owns the destination.
        user_line = ""
        if IS_ROOT:
            user_line = "user = %s\n" % MAIL_USER
            uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
            for base, dirs, _ in os.walk(self.dest):
                os.chown(base, uid, gid)
        with open(self.rc, "w") as f:
            f.write("[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
                    "port = %d\nusername = %s\npassword = %s\n\n"
                    "[destination]\ntype = Maildir\npath = %s/\n%s\n"
                    "[options]\nread_all = false\ndelete = false\nverbose = 2\n"
                    % (self.d.port, USER, PASSWORD, self.dest, user_line))
        os.chmod(self.rc, 0o600)

    def getmail(self):
        r = run([require("getmail"), "--getmaildir", self.gmdir, "--rcfile", self.rc],
                env=client_env(self.work))
        self.transcript = (r.stdout + r.stderr).decode(errors="replace")
        return r

    def destination(self):
        """{UIDL from getmail's Received field: delivered bytes}."""
        out = {}
        for sub in ("new", "cur"):
            for n in os.listdir(os.path.join(self.dest, sub)):
                with open(os.path.join(self.dest, sub, n), "rb") as f:
                    data = f.read()
                m = re.search(rb"msgid:(\S+?);", data[:2000])
                self.assertIsNotNone(m, "no msgid in getmail's Received: %r" % data[:400])
                uid = m.group(1).decode()
                self.assertNotIn(uid, out, "delivered twice: %s" % uid)
                out[uid] = data
        return out

    def check(self, got, names):
        self.assertEqual(sorted(got), sorted(uidl(n) for n in names), self.transcript[-3000:])
        files = maildir_files(self.d, USER)
        for name in names:
            (rp, dt, rcvd), rest = strip_added_fields(
                got[uidl(name)], ["Return-Path", "Delivered-To", "Received"])
            self.assertEqual(rp, b"Return-Path: <unknown>\n")
            self.assertEqual(dt, b"Delivered-To: unknown\n")
            self.assertRegex(rcvd, rb"^Received: from 127\.0\.0\.1 \(127\.0\.0\.1:%d\) by "
                                   rb"\S+ with POP3 getmail6\s+msgid:%s;"
                             % (self.d.port, re.escape(uidl(name).encode())))
            self.assertEqual(rest, crlf_to_lf(pop3_size(files[name])), "message %s" % name)

    def test_fetch_new_only(self):
        r = self.getmail()
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.check(self.destination(), self.names)
        # delete = false: all still on the server.
        self.assertEqual(maildir_files(self.d, USER), self.sent)

        # read_all = false: nothing new the second time.
        r = self.getmail()
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.assertEqual(sorted(self.destination()), sorted(uidl(n) for n in self.names))
        self.assertIn("0 messages", self.transcript)

        extra = b"From: late@example.org\nSubject: late\n\n.\nlate body \xe9\n"
        new_name = deliver_corpus(self.d, [extra], first=100)[0]
        r = self.getmail()
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        got = self.destination()
        self.check(got, self.names + [new_name])
        self.assertIn("1 messages", self.transcript)


# --- Python poplib --------------------------------------------------------------

class Poplib(ClientTest):

    def connect(self, login=True):
        p = poplib.POP3("127.0.0.1", self.d.port, timeout=20)
        self.addCleanup(p.close)
        if login:
            self.assertTrue(p.user(USER).startswith(b"+OK"))
            self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        return p

    def test_session(self):
        p = self.connect()
        wires = [self.wire(n) for n in self.names]
        self.assertEqual(p.stat(), (len(wires), sum(len(w) for w in wires)))
        resp, lines, _ = p.list()
        self.assertTrue(resp.startswith(b"+OK"))
        self.assertEqual(lines, [b"%d %d" % (i + 1, len(w)) for i, w in enumerate(wires)])
        self.assertEqual(p.list(3), b"+OK 3 %d" % len(wires[2]))
        resp, lines, _ = p.uidl()
        self.assertEqual(lines, [b"%d %s" % (i + 1, uidl(n).encode())
                                 for i, n in enumerate(self.names)])
        self.assertEqual(p.uidl(3), b"+OK 3 %s" % uidl(self.names[2]).encode())
        for i, w in enumerate(wires):
            resp, lines, octets = p.retr(i + 1)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            # poplib strips the line ends and turns a leading ".." into ".".
            self.assertEqual(b"\r\n".join(lines) + b"\r\n", w, "message %d" % (i + 1))
            self.assertEqual(octets, len(w))
            resp, lines, _ = p.top(i + 1, 0)
            self.assertEqual(b"\r\n".join(lines) + b"\r\n", header_part(w), "TOP %d 0" % (i + 1))

        self.assertTrue(p.dele(1).startswith(b"+OK"))
        self.assertEqual(p.stat(), (len(wires) - 1, sum(len(w) for w in wires[1:])))
        self.assertEqual(p.list()[1], [b"%d %d" % (i + 1, len(w))
                                       for i, w in enumerate(wires) if i > 0])
        with self.assertRaises(poplib.error_proto):
            p.retr(1)
        with self.assertRaises(poplib.error_proto):
            p.dele(1)
        self.assertTrue(p.rset().startswith(b"+OK"))
        self.assertEqual(p.stat(), (len(wires), sum(len(w) for w in wires)))
        self.assertEqual(p.retr(1)[1], wires[0][:-2].split(b"\r\n"))
        self.assertTrue(p.quit().startswith(b"+OK"))
        # RSET undid the DELE.
        self.assertEqual(maildir_files(self.d, USER), self.sent)

        # DELE then QUIT: the file is gone when QUIT has been answered.
        p = self.connect()
        self.assertTrue(p.dele(2).startswith(b"+OK"))
        self.assertTrue(p.dele(5).startswith(b"+OK"))
        self.assertTrue(p.quit().startswith(b"+OK"))
        self.assertEqual(maildir_files(self.d, USER),
                         {n: v for n, v in self.sent.items()
                          if n not in (self.names[1], self.names[4])})
        p = self.connect()
        left = [n for i, n in enumerate(self.names) if i not in (1, 4)]
        self.assertEqual(p.uidl()[1], [b"%d %s" % (i + 1, uidl(n).encode())
                                       for i, n in enumerate(left)])
        p.quit()

    def test_capa(self):
        p = self.connect(login=False)
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        caps = p.capa()
        for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
            self.assertIn(cap, caps)
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        caps = p.capa()
        for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
            self.assertIn(cap, caps)
        p.quit()

    def test_wrong_password(self):
        for user in (USER, "nosuchuser"):
            p = self.connect(login=False)
            p.user(user)
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_("not-the-password")
            self.assertTrue(cm.exception.args[0].startswith(b"-ERR [AUTH]"), cm.exception.args)
        # The right password still works afterwards.
        p = self.connect()
        self.assertEqual(p.stat()[0], len(self.names))
        p.quit()
        self.assertEqual(maildir_files(self.d, USER), self.sent)


if __name__ == "__main__":
    main()

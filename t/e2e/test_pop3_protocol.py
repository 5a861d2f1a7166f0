"""POP3 as RFC 1939 / 2449 / 3206 describe it, against the real fastpopd:
the AUTHORIZATION state, every TRANSACTION command and its errors, the
exact octets RETR and TOP put on the wire, ,W= size hints, PIPELINING."""
import os
import socket
import time

from fastpop_harness import DaemonTest, main, pop3_size, read_exact, retr_wire, stuff, wait_until


# --- helpers ----------------------------------------------------------------

def capa_set(p):
    r = p.cmd("CAPA")
    assert r.startswith("+OK"), r
    return p.multiline().decode("latin-1").split("\r\n")[:-1]


HEADERS = b"From: a@example.org\nTo: b@example.org\nSubject: test\n"


class Pop3Case(DaemonTest):
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def session(self, user="alice"):
        p = self.d.connect()
        r = p.login(user, self.d.users[user])
        self.assertTrue(r.startswith("+OK"), r)
        return p

    def assertStillUsable(self, p, what=""):
        self.assertEqual(p.cmd("NOOP"), "+OK", "session unusable after %s" % what)


# --- AUTHORIZATION ------------------------------------------------------------

class Authorization(Pop3Case):
    users = {"alice": "alice-secret", "bob": "bob-secret",
             "carol": "my pass  has spaces ", "dave": "x", "erin": " leading space"}

    def test_greeting_is_single_ok_line(self):
        self.d.start()
        p = self.d.connect()
        g = p.line()
        self.assertTrue(g.startswith("+OK"), g)
        # Nothing else is sent before the client speaks.
        self.assertFalse(p.closed_by_server(timeout=0.3))
        self.assertEqual(p.buf, b"")
        p.close()

    def test_capa_before_and_after_login(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        before = capa_set(p)
        for cap in ("USER", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                    "IMPLEMENTATION fastpop"):
            self.assertIn(cap, before)
        # The default auth_mechanisms; SASL is gone after login (test_sasl.py has more).
        self.assertIn("SASL PLAIN LOGIN", before)
        self.assertEqual(len(before), len(set(before)), before)
        self.assertEqual(p.cmd("USER alice"), "+OK Send your password")
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        after = capa_set(p)
        # RFC 2449 section 5: only what is accepted in TRANSACTION.
        self.assertEqual(sorted(after), sorted(["CAPA", "TOP", "UIDL", "RESP-CODES",
                                                "AUTH-RESP-CODE", "PIPELINING",
                                                "IMPLEMENTATION fastpop"]))
        self.assertNotEqual(p.cmd("USER alice")[:3], "+OK")
        self.assertTrue(p.cmd("CAPA extra").startswith("-ERR"))
        p.close()

    def test_user_pass_good(self):
        self.d.deliver("alice", HEADERS + b"\nhi\n")
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        r = p.cmd("PASS alice-secret")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % len(pop3_size(HEADERS + b"\nhi\n")))
        self.d.wait_log("login user=alice ip=127.0.0.1 mechanism=USER messages=1")
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()

    def test_wrong_password_and_unknown_user_get_same_reply(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        wrong = p.cmd("PASS not-her-password")
        self.assertTrue(wrong.startswith("-ERR [AUTH] "), wrong)
        # USER for a user that does not exist must not reveal it.
        u = p.cmd("USER nosuchuser")
        self.assertTrue(u.startswith("+OK"), u)
        self.assertEqual(u, "+OK Send your password")
        unknown = p.cmd("PASS whatever")
        self.assertEqual(unknown, wrong)
        # Still in AUTHORIZATION: a good login works after the failures.
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        p.close()

    def test_pass_without_user(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("-ERR"))
        # A failed PASS forgets the USER: PASS again needs USER again.
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS wrong").startswith("-ERR [AUTH]"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("-ERR"))
        self.assertTrue(p.cmd("STAT").startswith("-ERR"))
        self.assertTrue(p.cmd("USER").startswith("-ERR"))
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        p.close()

    def test_transaction_commands_refused_before_login(self):
        self.d.deliver("alice", HEADERS + b"\nhi\n")
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        # 8 refusals in all: below the default max_bad_commands (10).
        for c in ("STAT", "LIST 1", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET"):
            r = p.cmd(c)
            self.assertTrue(r.startswith("-ERR"), "%s before login: %r" % (c, r))
        # Single-line errors only: no body followed them.
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertEqual(p.buf, b"")
        # Also between USER and PASS.
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("RETR 1").startswith("-ERR"))
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        p.close()

    def test_password_with_spaces(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER carol").startswith("+OK"))
        # Only part of the password is not enough.
        self.assertTrue(p.cmd("PASS my pass").startswith("-ERR [AUTH]"))
        self.assertTrue(p.cmd("USER carol").startswith("+OK"))
        r = p.cmd("PASS my pass  has spaces ")
        self.assertTrue(r.startswith("+OK"), r)
        p.close()

    def test_password_with_leading_space(self):
        # RFC 1939: keyword and argument are separated by a single space, and
        # the server may take spaces as part of the password: the argument of
        # "PASS  leading space" is " leading space".
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER erin").startswith("+OK"))
        r = p.cmd("PASS  leading space")
        self.assertTrue(r.startswith("+OK"), "password %r refused: %r" % (" leading space", r))
        p.close()

    def test_max_auth_failures_closes_session(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        for i in range(2):
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            self.assertTrue(p.cmd("PASS bad%d" % i).startswith("-ERR [AUTH]"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS bad3").startswith("-ERR [AUTH]"))
        self.assertTrue(p.closed_by_server(), "session kept after 3 failures")
        self.d.wait_log("reason=auth-failures")
        # Even the right password is not accepted on that connection any more.
        # A new connection starts from zero.
        q = self.d.connect()
        self.assertTrue(q.login("alice", "alice-secret").startswith("+OK"))
        q.close()
        p.close()

    def test_failures_count_unknown_users_too(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        for name in ("ghost1", "alice", "ghost2"):
            self.assertTrue(p.cmd("USER " + name).startswith("+OK"))
            self.assertTrue(p.cmd("PASS nope").startswith("-ERR [AUTH]"))
        self.assertTrue(p.closed_by_server())
        self.d.wait_log("reason=auth-failures")
        p.close()

    def test_noop_and_quit_in_authorization(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        r = p.cmd("QUIT")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertTrue(p.closed_by_server(timeout=10))
        self.assertEqual(p.buf, b"")
        p.close()

    def test_user_and_pass_refused_after_login(self):
        self.d.start()
        p = self.session("alice")
        self.assertTrue(p.cmd("USER bob").startswith("-ERR"))
        self.assertTrue(p.cmd("PASS bob-secret").startswith("-ERR"))
        # Still alice's session.
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        p.close()


# --- TRANSACTION -------------------------------------------------------------

MSGS = [
    HEADERS + b"\nfirst body\n",
    HEADERS + b"\nsecond\nbody\n",
    HEADERS + b"\nthird message, a little longer than the others\n" * 3,
]


class Transaction(Pop3Case):
    def setUp(self):
        super().setUp()
        self.names = []
        for i, m in enumerate(MSGS):
            name = "%d.M%dP1.e2e" % (1700000000 + i, i)
            self.d.deliver("alice", m, name=name)
            self.names.append(name)
        self.sizes = [len(pop3_size(m)) for m in MSGS]
        self.d.start()

    def test_stat_list_uidl(self):
        p = self.session()
        self.assertEqual(p.cmd("STAT"), "+OK 3 %d" % sum(self.sizes))
        r = p.cmd("LIST")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(p.multiline(),
                         b"".join(b"%d %d\r\n" % (i + 1, s) for i, s in enumerate(self.sizes)))
        for i, s in enumerate(self.sizes):
            self.assertEqual(p.cmd("LIST %d" % (i + 1)), "+OK %d %d" % (i + 1, s))
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        self.assertEqual(p.multiline(),
                         b"".join(b"%d %s\r\n" % (i + 1, n.encode())
                                  for i, n in enumerate(self.names)))
        for i, n in enumerate(self.names):
            self.assertEqual(p.cmd("UIDL %d" % (i + 1)), "+OK %d %s" % (i + 1, n))
        # Commands are case-insensitive (RFC 1939 section 3).
        self.assertEqual(p.cmd("stat"), "+OK 3 %d" % sum(self.sizes))
        self.assertEqual(p.cmd("list 2"), "+OK 2 %d" % self.sizes[1])
        p.close()

    def test_retr_top_noop(self):
        p = self.session()
        for i, m in enumerate(MSGS):
            p.send("RETR %d\r\n" % (i + 1))
            want = retr_wire(m)
            self.assertEqual(read_exact(p, len(want)), want)
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("TOP 2 1").startswith("+OK"))
        self.assertEqual(p.multiline(), pop3_size(HEADERS + b"\nsecond\n"))
        self.assertTrue(p.cmd("Top 2 0").startswith("+OK"))
        self.assertEqual(p.multiline(), pop3_size(HEADERS + b"\n"))
        p.close()

    def test_errors_on_message_numbers(self):
        p = self.session()
        bad_numbers = ["0", "4", "abc", "-1", "+1", "1a", "0x1", "",
                       "4294967297",                   # 2^32 + 1: wraps to 1 in 32 bits
                       "18446744073709551617",         # 2^64 + 1: wraps to 1 in 64 bits
                       "99999999999999999999999999999999999999"]
        for cmd in ("RETR", "LIST", "UIDL", "TOP", "DELE"):
            for n in bad_numbers:
                if n == "" and cmd in ("LIST", "UIDL"):
                    continue
                line = ("%s %s" % (cmd, n)).rstrip()
                if cmd == "TOP":
                    line += " 0" if n else ""
                r = p.cmd(line)
                self.assertTrue(r.startswith("-ERR"), "%r -> %r" % (line, r))
                self.assertStillUsable(p, line)
        # Nothing was marked deleted by the failed DELEs.
        self.assertEqual(p.cmd("STAT"), "+OK 3 %d" % sum(self.sizes))
        p.close()

    def test_errors_on_extra_arguments(self):
        p = self.session()
        for line in ("RETR 1 2", "RETR 1 x", "DELE 1 2", "LIST 1 2", "UIDL 1 x",
                     "TOP 1 0 5", "TOP 1", "TOP 1 x", "TOP 1 -1", "TOP 1 0x1",
                     "STAT 1", "RSET 1"):
            r = p.cmd(line)
            self.assertTrue(r.startswith("-ERR"), "%r -> %r" % (line, r))
            self.assertStillUsable(p, line)
        self.assertEqual(p.cmd("STAT"), "+OK 3 %d" % sum(self.sizes))
        p.close()

    def test_bad_list_uidl_argument_as_first_command(self):
        # A fresh session each time: the reply must be -ERR and the worker,
        # which serves every other session too, must survive it.
        for i, line in enumerate(("LIST abc", "UIDL x", "LIST 0", "UIDL 99", "LIST 4", "UIDL -1")):
            # The previous session must have let go of the mailbox lock: a login
            # answered by the credential cache can outrun its close.
            self.d.wait_log("session user=alice ", count=i)
            with self.subTest(command=line):
                p = self.session()
                try:
                    r = p.cmd(line)
                    self.assertTrue(r.startswith("-ERR"), "%r -> %r" % (line, r))
                    self.assertStillUsable(p, line)
                except (EOFError, ConnectionResetError) as e:
                    self.fail("connection lost after %r as the first command: %r" % (line, e))
                finally:
                    p.close()
                self.assertNotIn("killed by signal", self.d.log())

    def test_errors_do_not_end_session_even_when_many(self):
        # A client probing numbers is not misbehaving: plain -ERR replies
        # must not count as bad commands (default max_bad_commands = 10).
        p = self.session()
        for i in range(15):
            self.assertTrue(p.cmd("RETR %d" % (100 + i)).startswith("-ERR"))
        self.assertStillUsable(p, "15 RETR of missing messages")
        p.close()

    def test_dele_rset_and_deleted_message_errors(self):
        p = self.session()
        self.assertEqual(p.cmd("DELE 2"), "+OK Message 2 deleted")
        for line in ("RETR 2", "LIST 2", "UIDL 2", "TOP 2 0", "DELE 2"):
            r = p.cmd(line)
            self.assertTrue(r.startswith("-ERR"), "%r on a deleted message -> %r" % (line, r))
            self.assertStillUsable(p, line)
        self.assertEqual(p.cmd("STAT"), "+OK 2 %d" % (self.sizes[0] + self.sizes[2]))
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        self.assertEqual(p.multiline(), b"1 %d\r\n3 %d\r\n" % (self.sizes[0], self.sizes[2]))
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        self.assertEqual(p.multiline(), ("1 %s\r\n3 %s\r\n" % (self.names[0], self.names[2]))
                         .encode())
        # Numbers do not shift after a DELE.
        self.assertEqual(p.cmd("LIST 3"), "+OK 3 %d" % self.sizes[2])
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 3").startswith("+OK"))
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        self.assertEqual(p.multiline(), b"")
        r = p.cmd("RSET")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(p.cmd("STAT"), "+OK 3 %d" % sum(self.sizes))
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        self.assertEqual(p.multiline().count(b"\r\n"), 3)
        p.send("RETR 2\r\n")
        want = retr_wire(MSGS[1])
        self.assertEqual(read_exact(p, len(want)), want)
        r = p.cmd("QUIT")
        self.assertEqual(r, "+OK Logging out, 0 messages deleted")
        self.assertEqual(len(self.d.messages("alice")), 3)
        p.close()

    def test_quit_in_transaction_closes(self):
        p = self.session()
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        r = p.cmd("QUIT")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertRegex(r, r"\b1\b")
        t0 = time.monotonic()
        self.assertTrue(p.closed_by_server(timeout=10), "server did not close after QUIT")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(p.buf, b"")
        self.assertEqual(len(self.d.messages("alice")), 2)
        p.close()

    def test_empty_mailbox(self):
        p = self.session("bob")
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        self.assertEqual(p.multiline(), b"")
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        self.assertEqual(p.multiline(), b"")
        for line in ("RETR 1", "LIST 1", "UIDL 1", "TOP 1 0", "DELE 1"):
            self.assertTrue(p.cmd(line).startswith("-ERR"), line)
        self.assertTrue(p.cmd("RSET").startswith("+OK"))
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()


# --- exact octets -------------------------------------------------------------

def big_boundary_message():
    """Crosses the server's 16 KiB read chunks with a CRLF split at a boundary,
    a dot line starting right at one, and a lone CR at one."""
    chunk = 16384
    out = bytearray(HEADERS + b"\n")
    out += b"a" * (chunk - len(out) - 1) + b"\r"        # CR is byte 16383
    out += b"\n"                                       # LF is byte 16384
    out += b"b" * (2 * chunk - len(out) - 1) + b"\n"    # line ends at 32767
    out += b".starts at a boundary\n"                  # '.' is byte 32768
    out += b"c" * (3 * chunk - len(out) - 1) + b"\r"    # lone CR at 49151
    out += b"d after lone CR\n..\n.\nend"
    return bytes(out)


EXACT = [
    ("lf", HEADERS + b"\nline one\nline two\n"),
    ("crlf", HEADERS.replace(b"\n", b"\r\n") + b"\r\nline one\r\nline two\r\n"),
    ("mixed", b"A: 1\r\nB: 2\n\r\nbody\nmore\r\nlast\n"),
    ("no-final-newline", HEADERS + b"\nno newline at the end"),
    ("final-lone-cr", HEADERS + b"\nends with CR\r"),
    ("empty", b""),
    ("only-newline", b"\n"),
    ("dot-lines", HEADERS + b"\n.\n..\n.x\n...\n. \nx.\n.\r\n.."),
    ("first-line-dot", b".first line is a dot line\nH: v\n\nbody\n"),
    ("single-dot", b"."),
    ("lone-cr-inside", b"H: a\rb\n\nx\ry\r\r\n\r.\n"),
    ("cr-cr-lf", b"H: v\r\r\n\r\nbody\r\r\n"),
    ("dot-crlf-dot", b"H: v\n\n\r\n.\r\n"),
    ("binary", bytes(range(256)) + b"\n.\x00.\n"),
    ("chunk-boundaries", big_boundary_message()),
]


class ExactBytes(Pop3Case):
    def setUp(self):
        super().setUp()
        for i, (label, data) in enumerate(EXACT):
            self.d.deliver("alice", data, name="%d.M%dP1.%s" % (1700000000 + i, i, label))
        self.d.start()

    def test_list_and_retr_octets_for_every_kind_of_file(self):
        p = self.session()
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        listing = p.multiline().decode().split("\r\n")[:-1]
        self.assertEqual(len(listing), len(EXACT))
        for i, (label, data) in enumerate(EXACT):
            size = len(pop3_size(data))
            with self.subTest(file=label):
                self.assertEqual(listing[i], "%d %d" % (i + 1, size))
                self.assertEqual(p.cmd("LIST %d" % (i + 1)), "+OK %d %d" % (i + 1, size))
                p.send("RETR %d\r\n" % (i + 1))
                want = retr_wire(data)
                got = read_exact(p, len(want))
                self.assertEqual(got, want)
                # Nothing more than that: the next reply comes right after.
                self.assertEqual(p.cmd("NOOP"), "+OK")
        total = sum(len(pop3_size(d)) for _, d in EXACT)
        self.assertEqual(p.cmd("STAT"), "+OK %d %d" % (len(EXACT), total))
        p.close()

    def test_retr_same_bytes_when_flags_already_set(self):
        # Second session: the messages are in cur/ with :2,S now.
        p = self.session()
        for i in range(len(EXACT)):
            p.send("RETR %d\r\n" % (i + 1))
            read_exact(p, len(retr_wire(EXACT[i][1])))
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()
        self.d.wait_log("reason=quit")
        p = self.session()
        for i, (label, data) in enumerate(EXACT):
            with self.subTest(file=label):
                p.send("RETR %d\r\n" % (i + 1))
                want = retr_wire(data)
                self.assertEqual(read_exact(p, len(want)), want)
        p.close()


def top_expect(data, n):
    """TOP n from RFC 1939: the header, the blank line, n body lines (CRLF form)."""
    full = pop3_size(data)
    lines = full.split(b"\r\n")[:-1] if full else []
    out = []
    i = 0
    while i < len(lines) and lines[i] != b"":
        out.append(lines[i])
        i += 1
    if i < len(lines):
        out.append(b"")              # the blank line
        out += lines[i + 1:i + 1 + n]
    return b"".join(l + b"\r\n" for l in out)


TOP_MSGS = [
    ("plain", HEADERS + b"\nb1\nb2\nb3\n"),
    ("crlf", b"H: 1\r\nK: 2\r\n\r\nb1\r\nb2\r\n"),
    ("no-blank-line", b"H: 1\nK: 2\nL: 3\n"),
    ("dot-body", HEADERS + b"\n.\n..\n.x\nlast\n"),
    ("no-final-newline", HEADERS + b"\nb1\nb2"),
    ("blank-body-lines", HEADERS + b"\n\n\nb3\n"),
]


class Top(Pop3Case):
    def setUp(self):
        super().setUp()
        for i, (label, data) in enumerate(TOP_MSGS):
            self.d.deliver("alice", data, name="%d.M%dP1.%s" % (1700000000 + i, i, label))
        self.d.start()

    def top_raw(self, p, msg, n):
        r = p.cmd("TOP %d %d" % (msg, n))
        self.assertTrue(r.startswith("+OK"), r)
        return p.raw_multiline()

    def test_top_variants(self):
        p = self.session()
        for i, (label, data) in enumerate(TOP_MSGS):
            for n in (0, 1, 2, 3, 1000, 4294967296):
                with self.subTest(file=label, lines=n):
                    want = top_expect(data, n)
                    self.assertEqual(self.top_raw(p, i + 1, n), stuff(want))
        # Checks of the oracle itself against the RFC wording.
        self.assertEqual(top_expect(TOP_MSGS[0][1], 0), pop3_size(HEADERS + b"\n"))
        self.assertEqual(top_expect(TOP_MSGS[2][1], 0), pop3_size(TOP_MSGS[2][1]))
        # TOP past the end is the whole message, exactly what RETR sends.
        for i, (label, data) in enumerate(TOP_MSGS):
            with self.subTest(file=label, lines="past end"):
                self.assertEqual(self.top_raw(p, i + 1, 10 ** 6), stuff(pop3_size(data)))
        # TOP on a message whose body line is ".": stuffed on the wire.
        raw = self.top_raw(p, 4, 1)
        self.assertTrue(raw.endswith(b"\r\n\r\n..\r\n"), raw)
        p.close()

    def test_top_does_not_mark_seen_nor_delete(self):
        p = self.session()
        self.top_raw(p, 1, 0)
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()
        names = self.d.messages("alice")
        self.assertEqual(len(names), len(TOP_MSGS))
        self.assertTrue(all(n.startswith("cur/") and n.endswith(":2,") for n in names), names)


# --- ,W= size hints -----------------------------------------------------------

class SizeHints(Pop3Case):
    def test_w_hint_is_listed(self):
        data = HEADERS + b"\nbody\n"
        real = len(pop3_size(data))
        self.d.deliver("alice", data, name="1700000000.M1P1.h,S=%d,W=%d" % (len(data), real))
        self.d.start()
        p = self.session()
        self.assertEqual(p.cmd("LIST 1"), "+OK 1 %d" % real)
        p.send("RETR 1\r\n")
        want = retr_wire(data)
        self.assertEqual(read_exact(p, len(want)), want)
        self.assertEqual(p.cmd("NOOP"), "+OK")
        p.close()

    def check_lying_hint(self, claimed, data):
        real = len(pop3_size(data))
        self.assertNotEqual(claimed, real)
        path = self.d.deliver("alice", data, name="1700000000.M1P1.h,W=%d:2," % claimed,
                              subdir="cur")
        self.d.start()
        p = self.session()
        # LIST and STAT trust the hint: no need to read the file.
        self.assertEqual(p.cmd("LIST 1"), "+OK 1 %d" % claimed)
        self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % claimed)
        self.assertEqual(p.cmd("RETR 1"), "+OK %d octets" % claimed)
        closed = p.closed_by_server(timeout=10)
        self.assertTrue(closed, "RETR of a mis-sized message did not end the connection")
        # No terminating dot line: the client must see the RETR as failed.
        self.assertFalse(p.buf.endswith(b".\r\n") and
                         (p.buf == b".\r\n" or p.buf.endswith(b"\r\n.\r\n")),
                         "final dot sent after a size mismatch: %r" % p.buf[-40:])
        self.assertTrue(stuff(pop3_size(data)).startswith(p.buf), p.buf[:200])
        self.d.wait_log("message 1 changed during the session")
        p.close()
        # Not deleted, not marked seen (the retrieval failed), and unlocked.
        self.assertTrue(os.path.exists(path), self.d.messages("alice"))
        q = self.session()
        self.assertTrue(q.cmd("STAT").startswith("+OK 1 "))
        q.close()

    def test_w_hint_too_big_drops_connection_without_final_dot(self):
        self.check_lying_hint(999, HEADERS + b"\nsmall body\n")

    def test_w_hint_too_small_drops_connection_without_final_dot(self):
        self.check_lying_hint(10, HEADERS + b"\n" + b"x" * 70000 + b"\n")


# --- PIPELINING ---------------------------------------------------------------

class Pipelining(Pop3Case):
    def setUp(self):
        super().setUp()
        self.msgs = [HEADERS + b"\none\n.\n", HEADERS + b"\ntwo\n", b"H: 3\n\nthree\n"]
        for i, m in enumerate(self.msgs):
            self.d.deliver("alice", m, name="%d.M%dP1.pipe" % (1700000000 + i, i))
        self.sizes = [len(pop3_size(m)) for m in self.msgs]
        self.d.start()

    def test_transaction_pipeline_in_one_send(self):
        p = self.session()
        p.send("STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\nLIST 9\r\nDELE 3\r\nNOOP\r\n"
               "STAT\r\nQUIT\r\n")
        self.assertEqual(p.line(), "+OK 3 %d" % sum(self.sizes))
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(p.multiline(), b"".join(b"%d %d\r\n" % (i + 1, s)
                                                 for i, s in enumerate(self.sizes)))
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(p.multiline().count(b"\r\n"), 3)
        self.assertEqual(p.line(), "+OK %d octets" % self.sizes[0])
        self.assertEqual(p.multiline(), pop3_size(self.msgs[0]))
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(p.multiline(), pop3_size(HEADERS + b"\n"))
        self.assertTrue(p.line().startswith("-ERR"))
        self.assertEqual(p.line(), "+OK Message 3 deleted")
        self.assertEqual(p.line(), "+OK")
        self.assertEqual(p.line(), "+OK 2 %d" % (self.sizes[0] + self.sizes[1]))
        self.assertEqual(p.line(), "+OK Logging out, 1 messages deleted")
        self.assertTrue(p.closed_by_server(timeout=10))
        self.assertEqual(p.buf, b"")
        self.assertEqual(len(self.d.messages("alice")), 2)
        p.close()

    def test_pipeline_with_user_and_pass_before_greeting_is_read(self):
        p = self.d.connect()
        p.send("CAPA\r\nUSER alice\r\nPASS alice-secret\r\nSTAT\r\nRETR 2\r\nDELE 2\r\n"
               "UIDL 2\r\nQUIT\r\n")
        self.assertTrue(p.line().startswith("+OK"))         # greeting
        self.assertTrue(p.line().startswith("+OK"))         # CAPA
        self.assertIn(b"PIPELINING\r\n", p.multiline())
        self.assertTrue(p.line().startswith("+OK"))         # USER
        self.assertTrue(p.line().startswith("+OK"))         # PASS
        self.assertEqual(p.line(), "+OK 3 %d" % sum(self.sizes))
        self.assertEqual(p.line(), "+OK %d octets" % self.sizes[1])
        self.assertEqual(p.multiline(), pop3_size(self.msgs[1]))
        self.assertTrue(p.line().startswith("+OK"))         # DELE
        self.assertTrue(p.line().startswith("-ERR"))        # UIDL of a deleted message
        self.assertEqual(p.line(), "+OK Logging out, 1 messages deleted")
        self.assertTrue(p.closed_by_server(timeout=10))
        p.close()

    def test_pipeline_then_half_close(self):
        # Like "printf ... | nc": the client sends everything, then its FIN.
        p = self.d.connect()
        p.send("USER alice\r\nPASS alice-secret\r\nRETR 3\r\nDELE 1\r\nQUIT\r\n")
        p.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(p.line().startswith("+OK"))         # greeting
        self.assertTrue(p.line().startswith("+OK"))         # USER
        self.assertTrue(p.line().startswith("+OK"))         # PASS
        self.assertEqual(p.line(), "+OK %d octets" % self.sizes[2])
        self.assertEqual(p.multiline(), pop3_size(self.msgs[2]))
        self.assertEqual(p.line(), "+OK Message 1 deleted")
        self.assertEqual(p.line(), "+OK Logging out, 1 messages deleted")
        self.assertTrue(p.closed_by_server(timeout=10))
        self.assertEqual(len(self.d.messages("alice")), 2)
        p.close()

    def test_pipeline_with_failed_login_then_good_one(self):
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.send("USER alice\r\nPASS wrong\r\nSTAT\r\nUSER alice\r\nPASS alice-secret\r\n"
               "STAT\r\nQUIT\r\n")
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.line().startswith("-ERR [AUTH]"))
        self.assertTrue(p.line().startswith("-ERR"))        # STAT: not logged in
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(p.line(), "+OK 3 %d" % sum(self.sizes))
        self.assertTrue(p.line().startswith("+OK"))
        p.close()

    def test_commands_after_quit_are_not_answered(self):
        p = self.session()
        p.send("QUIT\r\nNOOP\r\nSTAT\r\n")
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.closed_by_server(timeout=10))
        self.assertEqual(p.buf, b"")
        p.close()

    def test_long_pipelines(self):
        p = self.session()
        # More than the server's 4 KiB input buffer of small commands.
        n = 1500
        p.send("NOOP\r\n" * n)
        for i in range(n):
            self.assertEqual(p.line(), "+OK", "reply %d" % i)
        # Many RETRs of a message bigger than the output high-water mark.
        big = HEADERS + b"\n" + (b"." + b"z" * 98 + b"\n") * 3000
        self.d.deliver("bob", big)
        q = self.session("bob")
        q.send("RETR 1\r\n" * 12 + "STAT\r\n")
        want = retr_wire(big)
        for i in range(12):
            self.assertEqual(read_exact(q, len(want), timeout=20), want, "RETR %d" % i)
        self.assertEqual(q.line(), "+OK 1 %d" % len(pop3_size(big)))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        p.close()
        q.close()


if __name__ == "__main__":
    main()

"""Odd things in a maildir (issue 13), each with one defined behaviour, never
a hang, a crash or a mailbox that cannot be opened:

  - a directory, FIFO, socket or symlink in new/ or cur/: not a message,
    skipped silently (a symlink is never followed: it could point anywhere);
  - a file the mail user may not read (another owner): skipped, logged as
    "files not served", the rest of the mailbox served;
  - two files with one unique part: the first in name order is served, the
    other is left on disk, logged, and served once the first is deleted (so
    UIDLs stay unique within a session, RFC 1939);
  - a file in new/ whose cur/ name exists: left in new/, logged the same way;
  - names with spaces, newlines, 255 bytes or invalid UTF-8: served, with a
    UIDL in 0x21-0x7E of at most 70 characters;
  - a file that vanishes between LIST and RETR: -ERR for that message, the
    session goes on;
  - a file that grows between LIST and RETR: the announced octets are never
    exceeded silently (the session ends rather than send a wrong size).
"""
import os
import socket

from fastpop_harness import IS_ROOT, DaemonTest, main, wait_until

USER = "alice"
PASSWORD = "alice-secret"


def uidl_ok(u):
    return 1 <= len(u) <= 70 and all(0x21 <= ord(ch) <= 0x7E for ch in u)


class OddMaildir(DaemonTest):
    workers = 1

    def setUp(self):
        super().setUp()
        self.root = self.d.maildir(USER)

    def login(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        r = p.login(USER, PASSWORD)
        self.assertTrue(r.startswith("+OK"), r)
        return p

    def listing(self, p):
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        return [l.split(" ", 1)[1] for l in p.multiline().decode().split("\r\n")[:-1]]

    def test_non_files_are_skipped(self):
        self.d.deliver(USER, "Subject: real\r\n\r\nR\r\n", name="1000.real.host")
        for sub in ("new", "cur"):
            os.mkdir(os.path.join(self.root, sub, "1001.dir%s.host:2," % sub))
            os.mkfifo(os.path.join(self.root, sub, "1002.fifo%s.host:2," % sub))
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(self.root, sub, "1003.sock%s.host:2," % sub))
            self.addCleanup(s.close)
            os.symlink("/etc/passwd", os.path.join(self.root, sub, "1004.link%s.host:2," % sub))
        self.d.start()
        p = self.login()
        self.assertEqual(p.cmd("STAT"), "+OK 1 20")
        self.assertEqual(self.listing(p), ["1000.real.host"])
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        self.assertIn(b"Subject: real", p.multiline())
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        # Nothing of them was touched: the symlink still points where it did.
        self.assertEqual(os.readlink(os.path.join(self.root, "cur", "1004.linkcur.host:2,")),
                         "/etc/passwd")

    def test_unreadable_file_does_not_close_the_mailbox(self):
        if not IS_ROOT:
            self.skipTest("needs root to make a file of another owner")
        self.d.deliver(USER, "Subject: a\r\n\r\nA\r\n", name="1000.a.host")
        other = self.d.deliver(USER, "Subject: x\r\n\r\nX\r\n", name="1001.other.host:2,",
                               subdir="cur")
        os.chown(other, 0, 0)
        os.chmod(other, 0o600)
        self.d.start()
        p = self.login()
        self.assertEqual(self.listing(p), ["1000.a.host"])
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        self.d.wait_log("files not served: 1 unreadable")
        self.assertTrue(os.path.exists(other), "the unreadable file was touched")

    def test_two_files_with_one_unique_name(self):
        a = self.d.deliver(USER, "Subject: first\r\n\r\n1\r\n", name="1000.dup.host:2,RS",
                           subdir="cur")
        b = self.d.deliver(USER, "Subject: second\r\n\r\n22\r\n", name="1000.dup.host:2,S",
                           subdir="cur")
        # In new/ under a name cur/ has already: it stays in new/.
        stuck = self.d.deliver(USER, "Subject: n\r\n\r\nN\r\n", name="1000.dup.host:2,S")
        self.d.start()
        p = self.login()
        self.assertEqual(self.listing(p), ["1000.dup.host"])
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        self.assertIn(b"Subject: first", p.multiline())
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        self.d.wait_log("1 with the unique name of another message, 1 left in new/")
        self.assertFalse(os.path.exists(a))
        self.assertTrue(os.path.exists(b), "the hidden duplicate was removed")
        self.assertTrue(os.path.exists(stuck), "the file in new/ was moved over another")
        # With the first gone, the next in line is served under the same UIDL.
        p = self.login()
        self.assertEqual(self.listing(p), ["1000.dup.host"])
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        self.assertIn(b"Subject: second", p.multiline())
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_strange_names_are_served_with_valid_uidls(self):
        # (name, where): 255 bytes is the longest name Linux allows; in new/ it
        # cannot take the ":2," suffix, so it moves to cur/ as it is.
        names = [("1000.sp ace.host", "new"), ("1001.new\nline.host", "new"),
                 ("1002.bad\xff\xfeutf8.host", "new"), ("1003." + "y" * 250, "new"),
                 ("1005." + "z" * 247 + ":2,", "cur"), ("1004.colon:2,S", "cur")]
        for i, (n, sub) in enumerate(names):
            self.assertLessEqual(len(n.encode("latin-1")), 255)
            self.d.deliver(USER, "Subject: %d\r\n\r\nbody\r\n" % i, subdir=sub,
                           name=n.encode("latin-1").decode("utf-8", "surrogateescape"))
        self.d.start()
        p = self.login()
        uidls = self.listing(p)
        self.assertEqual(len(uidls), len(names))
        self.assertEqual(len(set(uidls)), len(names), uidls)
        for u in uidls:
            self.assertTrue(uidl_ok(u), repr(u))
        for i in range(1, len(names) + 1):
            r = p.cmd("RETR %d" % i)
            self.assertTrue(r.startswith("+OK"), r)
            self.assertIn(b"body", p.multiline())
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_file_vanishes_between_list_and_retr(self):
        path = self.d.deliver(USER, "Subject: gone\r\n\r\nG\r\n", name="1000.gone.host")
        self.d.deliver(USER, "Subject: stays\r\n\r\nS\r\n", name="1001.stays.host")
        self.d.start()
        p = self.login()
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        p.multiline()
        cur = os.path.join(self.root, "cur")
        for n in os.listdir(cur):
            if n.startswith("1000.gone.host"):
                os.unlink(os.path.join(cur, n))
        r = p.cmd("RETR 1")
        self.assertTrue(r.startswith("-ERR"), r)
        r = p.cmd("RETR 2")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertIn(b"stays", p.multiline())
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        self.assertFalse(os.path.exists(path))

    def test_file_grows_between_list_and_retr(self):
        self.d.deliver(USER, "Subject: grows\r\n\r\nG\r\n", name="1000.grows.host")
        self.d.start()
        p = self.login()
        self.assertEqual(p.cmd("LIST 1"), "+OK 1 21")
        cur = os.path.join(self.root, "cur")
        name = [n for n in os.listdir(cur) if n.startswith("1000.grows.host")][0]
        with open(os.path.join(cur, name), "a") as f:
            f.write("more text appended by someone else\r\n" * 100)
        r = p.cmd("RETR 1")
        if r.startswith("-ERR"):
            return   # refused before sending: fine
        self.assertEqual(r, "+OK 21 octets")
        # Either exactly what was announced arrives, or the session ends
        # without the terminating dot: never a body longer than announced.
        try:
            body = p.multiline()
            self.assertEqual(len(body), 21, body)
        except EOFError:
            pass


if __name__ == "__main__":
    main()

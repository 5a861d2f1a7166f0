"""pop3_workarounds (Dovecot's names): outlook-no-nuls sends a NUL as 0x80,
one octet for one, so LIST's size still holds; oe-ns-eoh gives TOP of a
message without an empty line after its headers that line. Off by default:
then messages go out byte for byte as they are (what Courier and Dovecot do
without the setting). An unknown word is refused with file:line."""
import os
import subprocess
import unittest

from fastpop_harness import BIN, Daemon, DaemonTest, main

WITH_NULS = b"Subject: a\x00b\r\n\r\nline\x00one\r\n\x00\r\n"
HEADERS_ONLY = b"Subject: no body\r\nX-Other: 1\r\n"


class Base(DaemonTest):
    workers = 1

    def session(self):
        self.d.deliver("alice", WITH_NULS, name="1700000001.M1P1.e2e")
        self.d.deliver("alice", HEADERS_ONLY, name="1700000002.M2P2.e2e")
        self.d.start()
        p = self.d.connect()
        p.login("alice", "alice-secret")
        self.addCleanup(p.close)
        return p

    def retr(self, p, n):
        size = int(p.cmd("LIST %d" % n).split()[2])
        self.assertTrue(p.cmd("RETR %d" % n).startswith("+OK"))
        body = p.multiline()
        self.assertEqual(len(body), size, "RETR sent what LIST announced")
        return body


class Off(Base):
    def test_messages_are_sent_as_they_are(self):
        p = self.session()
        self.assertEqual(self.retr(p, 1), WITH_NULS)
        self.assertTrue(p.cmd("TOP 2 0").startswith("+OK"))
        self.assertEqual(p.multiline(), HEADERS_ONLY)


class On(Base):
    extra_config = "pop3_workarounds = outlook-no-nuls oe-ns-eoh\n"

    def test_nuls_replaced_and_headers_ended(self):
        p = self.session()
        self.assertEqual(self.retr(p, 1), WITH_NULS.replace(b"\x00", b"\x80"))
        self.assertTrue(p.cmd("TOP 1 0").startswith("+OK"))
        self.assertEqual(p.multiline(), b"Subject: a\x80b\r\n\r\n")
        self.assertTrue(p.cmd("TOP 2 5").startswith("+OK"))
        self.assertEqual(p.multiline(), HEADERS_ONLY + b"\r\n")
        # RETR of the headers-only message is untouched: its size is LIST's.
        self.assertEqual(self.retr(p, 2), HEADERS_ONLY)
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))


class Settings(unittest.TestCase):
    def test_unknown_word_refused(self):
        d = Daemon(workers=1, extra_config="pop3_workarounds = outlook-no-nuls oe-ns-eof\n")
        self.addCleanup(d.cleanup)
        r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", d.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"fastpop\.conf:\d+: pop3_workarounds: unknown \"oe-ns-eof\"")


if __name__ == "__main__":
    main()

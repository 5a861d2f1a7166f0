"""One user, one name. With LDAP the canonical name comes from the directory
entry (the uid the filter matched), so LALICE, lalice and lAlIcE are one user:
one maildir, one lock, one penalty score, one name in the logs and for
popctl kick. And one name rule for every mechanism: USER, AUTH PLAIN and
AUTH LOGIN accept and refuse the same bytes (UTF-8 names in, Latin-1 bytes
and control characters out)."""

import base64
import os
import subprocess
import unittest

from fastpop_harness import BIN, Daemon, main
from ldap_fixture import Slapd, hash_ssha, ldap_config, person, secret_file

LDAP_USERS = {"lalice": "alice-ldap-pw"}


def plain(user, password):
    return base64.b64encode(b"\0" + user + b"\0" + password.encode()).decode()


class LdapCanonicalNameTest(unittest.TestCase):
    slapd = None

    @classmethod
    def setUpClass(cls):
        cls.slapd = Slapd([person(u, hash_ssha(pw)) for u, pw in LDAP_USERS.items()]).start()

    @classmethod
    def tearDownClass(cls):
        cls.slapd.cleanup()

    def daemon(self, extra="", log_level="info"):
        d = Daemon(workers=2, users={"local": "local-secret"})
        self.addCleanup(d.cleanup)
        d.extra_config = ldap_config(self.slapd.uri, secret_file(d.dir), "bind", extra)
        d.write_config(d.config_text().replace("log_level = info", "log_level = " + log_level))
        d.maildir("lalice")
        return d.start()

    def session(self, d, user):
        p = d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
        return p, p.cmd("PASS " + LDAP_USERS["lalice"])

    def popctl(self, d, *args):
        return subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "-s",
                               os.path.join(d.run_dir, "control.sock")] + list(args),
                              capture_output=True, text=True, timeout=30)

    def test_case_variants_are_one_user(self):
        d = self.daemon()
        d.deliver("lalice", "Subject: one\r\n\r\nbody\r\n")
        first, r = self.session(d, "LALICE")
        # the directory's maildir, not a new one named after the spelling
        self.assertEqual(r, "+OK Logged in, 1 messages")
        self.assertFalse(os.path.exists(os.path.join(d.mail, "LALICE")))
        # one lock, whichever worker and spelling the next session has
        for spelling in ("lalice", "lAlIcE", "LALICE"):
            _, r = self.session(d, spelling)
            self.assertTrue(r.startswith("-ERR [IN-USE]"), "%s: %r" % (spelling, r))
        d.wait_log("login user=lalice ip=127.0.0.1 mechanism=USER")
        self.assertNotIn("login user=LALICE", d.log())
        # the administrator names the user as the directory does
        r = self.popctl(d, "kick", "lalice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 session(s) kicked", r.stdout)
        self.assertTrue(first.line().startswith("-ERR [SYS/TEMP]"))
        self.assertTrue(first.closed_by_server())
        d.wait_log("session user=lalice ip=127.0.0.1")
        self.assertNotIn("session user=LALICE", d.log())

    def test_penalty_counts_every_spelling_for_the_user(self):
        d = self.daemon("auth_penalty = yes\nauth_penalty_delay = 0s\n", log_level="debug")
        p = d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER LaLiCe").startswith("+OK"))
        self.assertTrue(p.cmd("PASS wrong").startswith("-ERR [AUTH]"))
        d.wait_log("auth penalty ip=127.0.0.1 user=lalice ")
        self.assertNotIn("auth penalty ip=127.0.0.1 user=LaLiCe", d.log())


class NameRuleTest(unittest.TestCase):
    """The same bytes are a user name for USER, AUTH PLAIN and AUTH LOGIN."""

    UTF8_NAME = "j\u00fcrgen"   # UTF-8 on the wire: 6a c3 bc 72 67 65 6e

    def setUp(self):
        self.d = Daemon(users={self.UTF8_NAME: "juergen-pw", "alice": "alice-secret"})
        self.addCleanup(self.d.cleanup)
        self.d.start()

    def connect(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        self.last = p
        return p

    def user_pass(self, name, password):
        p = self.connect()
        p.send(b"USER " + name + b"\r\n")
        r = p.line()
        if not r.startswith("+OK"):
            return r
        return p.cmd("PASS " + password)

    def auth_plain(self, name, password):
        return self.connect().cmd("AUTH PLAIN " + plain(name, password))

    def auth_login(self, name, password):
        p = self.connect()
        self.assertTrue(p.cmd("AUTH LOGIN").startswith("+ "))
        self.assertTrue(p.cmd(base64.b64encode(name).decode()).startswith("+ "))
        return p.cmd(base64.b64encode(password.encode()).decode())

    def test_utf8_name_works_with_every_mechanism(self):
        name = self.UTF8_NAME.encode()
        for i, how in enumerate((self.user_pass, self.auth_plain, self.auth_login)):
            r = how(name, "juergen-pw")
            self.assertTrue(r.startswith("+OK"), "%s: %r" % (how.__name__, r))
            self.d.wait_log("login user=j\u00fcrgen ip=127.0.0.1", count=i + 1)
            # QUIT and its end, so the next mechanism finds the mailbox unlocked
            self.assertTrue(self.last.cmd("QUIT").startswith("+OK"))
            self.assertTrue(self.last.closed_by_server())

    def test_bad_bytes_are_refused_by_every_mechanism(self):
        for name in (b"j\xfcrgen",           # Latin-1: not UTF-8
                     b"j\xc3",               # cut short
                     b"al\x7fice",           # DEL
                     b"al\xc2\x85ice",       # C1 control (NEL)
                     b"\xc0\xafetc"):        # overlong "/"
            r = self.user_pass(name, "x")
            self.assertEqual(r, "-ERR Invalid user name", name)
            for how in (self.auth_plain, self.auth_login):
                r = how(name, "x")
                self.assertTrue(r.startswith("-ERR [AUTH]"), "%s %r: %r" % (how.__name__, name, r))
        # nothing of it reached the helper: no password database was asked
        self.assertNotIn("auth failed", self.d.log())


if __name__ == "__main__":
    main()

"""passdb = ldap against a real slapd started here: both modes, good and bad
passwords, unknown users, filter injection, empty passwords, the --test
command, LDAP down and back, LDAP stopped (SIGSTOP) while other sessions on
the same worker keep flowing, failover to a second URI, and TLS (StartTLS and
ldaps://, against a CA made by the fixture, and refused with another CA). The
helper's LDAP timings and errors show in popctl stats."""

import json
import os
import subprocess
import time
import unittest

from fastpop_harness import BIN, Daemon, Pop3, main
from ldap_fixture import (Slapd, closed_port, hash_crypt, hash_ssha, ldap_config, person,
                          public_copy, secret_file, timed)

USERS = {"lalice": "alice-ldap-pw", "lbob": "bob ldap pw", "ldave": "dave-pw"}


def directory_entries():
    return [person("lalice", hash_ssha(USERS["lalice"])),
            person("lbob", hash_crypt(USERS["lbob"]), description="maildir:/srv/mail/lbob"),
            person("ldave", hash_ssha(USERS["ldave"]), home="/home/dave"),
            # two entries with one uid: ambiguous, refused
            person("twin", hash_ssha("twin-pw"), ou="people"),
            person("twin", hash_ssha("twin-pw"), ou="staff"),
            # a user with no password at all
            person("nopw", None)]


class LdapTest(unittest.TestCase):
    slapd = None

    @classmethod
    def setUpClass(cls):
        cls.slapd = Slapd(directory_entries()).start()

    @classmethod
    def tearDownClass(cls):
        cls.slapd.cleanup()

    def daemon(self, mode, uri=None, extra="", workers=2):
        d = Daemon(workers=workers, users={"local": "local-secret"})
        self.addCleanup(d.cleanup)
        secret = secret_file(d.dir)
        d.extra_config = ldap_config(uri or self.slapd.uri, secret, mode, extra)
        d.write_config()
        for u in USERS:
            d.maildir(u)
        return d

    def login(self, d, user, password, **kw):
        """One login on a new connection, closed afterwards (max_connections_per_ip)."""
        p = d.connect(**kw)
        try:
            greeting = p.line()
            self.assertTrue(greeting.startswith("+OK"), greeting)
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            return p.cmd("PASS " + password)
        finally:
            p.close()

    @staticmethod
    def stats(d):
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "-s",
                            os.path.join(d.run_dir, "control.sock"), "--json", "stats"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def check_modes_common(self, d):
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        # {CRYPT} ($6$ by openssl passwd), checked by slapd or by auth/scheme.c
        self.assertTrue(self.login(d, "lbob", USERS["lbob"]).startswith("+OK"))
        self.assertTrue(self.login(d, "lalice", "wrong").startswith("-ERR [AUTH]"))
        self.assertTrue(self.login(d, "nobody", "whatever").startswith("-ERR [AUTH]"))
        # filter injection: the name is a literal, never a wildcard
        for name in ("*", ")(uid=*", "lal*", "*)(uid=lalice", "lalice)(|(uid=*", "\\2a"):
            r = self.login(d, name, USERS["lalice"])
            self.assertTrue(r.startswith("-ERR [AUTH]"), "%r got %r" % (name, r))
        self.assertTrue(self.login(d, "twin", "twin-pw").startswith("-ERR [AUTH]"))
        self.assertTrue(self.login(d, "nopw", "x").startswith("-ERR [AUTH]"))
        # a file user next to LDAP
        self.assertTrue(self.login(d, "local", "local-secret").startswith("+OK"))
        d.wait_log("reason=ambiguous-user")
        log = d.log()
        self.assertIn("auth failed user=)(uid=* ip=127.0.0.1 mechanism=USER "
                      "reason=unknown-user", log)
        self.assertNotIn(USERS["lalice"], log)
        self.assertNotIn("reader-secret", log)

    def test_password_mode(self):
        d = self.daemon("password").start()
        self.check_modes_common(d)
        self.assertIn("reason=bad-password", d.log())
        # Every LDAP lookup was one helper request; a healthy server gave no errors.
        s = self.stats(d)
        self.assertGreaterEqual(s["ldap_duration_seconds"]["count"], 10)
        self.assertLessEqual(s["ldap_duration_seconds"]["count"],
                             s["auth_helper_duration_seconds"]["count"])
        self.assertEqual(s["ldap_errors"], 0)
        self.assertEqual(s["logins"]["USER"]["ok"], 3)

    def test_bind_mode(self):
        d = self.daemon("bind").start()
        self.check_modes_common(d)
        self.assertTrue(self.login(d, "lbob", "bob ldap").startswith("-ERR [AUTH]"))

    def auth_test(self, d, user, password, mode):
        d.write_config(d.config_text().replace("ldap_auth = bind", "ldap_auth = " + mode))
        r = subprocess.run([os.path.join(BIN, "fastpop-auth"), "-c", d.conf, "--test", user],
                           input=password.encode() + b"\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_auth_cli(self):
        d = self.daemon("bind", extra="ldap_maildir_attribute = description\n"
                                      "ldap_home_attribute = homeDirectory\n")
        for mode in ("bind", "password"):
            rc, out, err = self.auth_test(d, "lbob", USERS["lbob"], mode)
            self.assertEqual((rc, out), (0, "ok user=lbob maildir=/srv/mail/lbob\n"), err)
            # no description: the template (maildir = .../%n/Maildir)
            rc, out, err = self.auth_test(d, "ldave", USERS["ldave"], mode)
            self.assertEqual(rc, 0, err)
            self.assertTrue(out.endswith("/ldave/Maildir\n"), out)
            rc, out, err = self.auth_test(d, "lbob", "nope", mode)
            self.assertEqual((rc, out), (1, "fail\n"), err)
            # an empty password is refused before any bind
            rc, out, err = self.auth_test(d, "lbob", "", mode)
            self.assertEqual((rc, out), (1, "fail\n"), err)
            self.assertIn("reason=empty-password", err)

    def test_ldap_down_then_back(self):
        s = Slapd(directory_entries()).start()
        self.addCleanup(s.cleanup)
        # One worker: the cache hit counted below is the worker's memory of lalice's login.
        d = self.daemon("bind", uri=s.uri, workers=1).start()
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        s.stop()
        # ldave never logged in, so no credential cache entry can answer for it
        self.assertTrue(self.login(d, "ldave", USERS["ldave"]).startswith("-ERR [SYS/TEMP]"))
        # the password file does not depend on LDAP
        self.assertTrue(self.login(d, "local", "local-secret").startswith("+OK"))
        # a user who logged in before keeps logging in (the credential cache)
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        s.start()
        deadline = time.monotonic() + 40
        while True:
            # a user not in the credential cache, so the answer must come from LDAP
            r = self.login(d, "lbob", USERS["lbob"])
            if r.startswith("+OK") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertTrue(r.startswith("+OK"), r)
        d.wait_log("connection to %s is back" % s.uri)
        st = self.stats(d)
        self.assertGreaterEqual(st["ldap_errors"], 1)
        self.assertGreaterEqual(st["logins"]["USER"]["tempfail"], 1)
        self.assertGreaterEqual(st["auth_cache_lookups"]["hit"], 1)

    def test_ldap_stopped_does_not_hold_the_worker(self):
        s = Slapd(directory_entries()).start()
        self.addCleanup(s.cleanup)
        d = self.daemon("password", uri=s.uri, workers=1).start()
        r = self.login(d, "lalice", USERS["lalice"])
        self.assertTrue(r.startswith("+OK"), r)
        idle = d.connect()
        self.addCleanup(idle.close)
        r = idle.line()
        self.assertTrue(r.startswith("+OK"), r)
        s.pause()
        self.addCleanup(s.resume)
        slow = d.connect()
        self.addCleanup(slow.close)
        r = slow.line()
        self.assertTrue(r.startswith("+OK"), r)
        slow.send("USER ldave\r\nPASS %s\r\n" % USERS["ldave"])
        r = slow.line()
        self.assertTrue(r.startswith("+OK"), r)
        time.sleep(0.3)
        # same worker: its other sessions and the file users do not wait
        r, took = timed(lambda: idle.cmd("NOOP"))
        self.assertEqual(r, "+OK")
        r, took = timed(lambda: self.login(d, "local", "local-secret"))
        self.assertTrue(r.startswith("+OK"), r)
        # ldap_timeout (5 s) passes first; the client waits up to its own 10 s.
        slow.sock.settimeout(20)
        r = slow.line()
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        d.wait_log("no answer within ldap_timeout")
        s.resume()

    def test_failover_to_second_uri(self):
        dead = "ldap://127.0.0.1:%d" % closed_port()
        d = self.daemon("bind", uri=dead + " " + self.slapd.uri).start()
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        self.assertTrue(self.login(d, "lalice", "bad").startswith("-ERR [AUTH]"))

    def test_failover_when_first_server_stops(self):
        a = Slapd(directory_entries()).start()
        self.addCleanup(a.cleanup)
        d = self.daemon("bind", uri=a.uri + " " + self.slapd.uri).start()
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        a.stop()
        deadline = time.monotonic() + 20
        while True:
            r = self.login(d, "lbob", USERS["lbob"])
            if r.startswith("+OK") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertTrue(r.startswith("+OK"), r)

    def test_bad_secret_is_a_tempfail(self):
        d = Daemon(users={"local": "local-secret"})
        self.addCleanup(d.cleanup)
        secret = secret_file(d.dir, "not-the-secret")
        d.extra_config = ldap_config(self.slapd.uri, secret, "bind")
        d.write_config()
        d.start()
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("-ERR [SYS/TEMP]"))
        self.assertIn("bind as ldap_bind_dn", d.log())
        self.assertTrue(self.login(d, "local", "local-secret").startswith("+OK"))


class LdapTlsTest(unittest.TestCase):
    """One slapd with its own CA, serving StartTLS on ldap:// and ldaps://."""
    slapd = None

    @classmethod
    def setUpClass(cls):
        cls.slapd = Slapd(directory_entries(), tls=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.slapd.cleanup()

    def daemon(self, uri, ca, extra=""):
        d = Daemon(users={"local": "local-secret"})
        self.addCleanup(d.cleanup)
        secret = secret_file(d.dir)
        ca_file = public_copy(ca, d.dir, "ldap-ca.pem")
        d.extra_config = ldap_config(uri, secret, "bind",
                                     "ldap_tls_ca_file = %s\n%s" % (ca_file, extra))
        d.write_config()
        d.maildir("lalice")
        return d.start()

    def login(self, d, user, password):
        p = d.connect()
        try:
            self.assertTrue(p.line().startswith("+OK"))
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            return p.cmd("PASS " + password)
        finally:
            p.close()

    def check_logins(self, d):
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("+OK"))
        self.assertTrue(self.login(d, "lalice", "wrong").startswith("-ERR [AUTH]"))

    def test_starttls(self):
        d = self.daemon(self.slapd.uri, self.slapd.ca_cert, "ldap_starttls = yes\n")
        self.check_logins(d)
        self.assertNotIn("connection failed", d.log())

    def test_ldaps(self):
        d = self.daemon(self.slapd.ldaps_uri, self.slapd.ca_cert)
        self.check_logins(d)
        self.assertNotIn("connection failed", d.log())

    def check_wrong_ca(self, d, what):
        r = self.login(d, "lalice", USERS["lalice"])
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        d.wait_log("ldap: service connection failed: " + what)
        line = [l for l in d.log().splitlines() if "connection failed: " + what in l][0]
        self.assertIn("server certificate not trusted by ldap_tls_ca_file", line)
        self.assertNotIn("auth ok user=lalice", d.log())
        # the password file does not depend on LDAP
        self.assertTrue(self.login(d, "local", "local-secret").startswith("+OK"))

    def test_starttls_wrong_ca_refused(self):
        d = self.daemon(self.slapd.uri, self.slapd.other_ca_cert, "ldap_starttls = yes\n")
        self.check_wrong_ca(d, "StartTLS: TLS handshake with %s failed" % self.slapd.uri)

    def test_ldaps_wrong_ca_refused(self):
        d = self.daemon(self.slapd.ldaps_uri, self.slapd.other_ca_cert)
        self.check_wrong_ca(d, "TLS handshake with %s failed" % self.slapd.ldaps_uri)

    def test_ldaps_nobody_listening_is_not_called_a_tls_failure(self):
        uri = "ldaps://127.0.0.1:%d" % closed_port()
        d = self.daemon(uri, self.slapd.ca_cert)
        self.assertTrue(self.login(d, "lalice", USERS["lalice"]).startswith("-ERR [SYS/TEMP]"))
        d.wait_log("ldap: service connection failed: connect to %s: " % uri)
        self.assertNotIn("TLS handshake", d.log())


if __name__ == "__main__":
    main()

"""The user's own POP3 policy (issue 16 part 4, per-user access), end to end
against the real daemon and helper: passwd-file extra fields (disablepop3,
disableinsecurepop3, pop3_login_delay, a value that cannot be read) and LDAP
attributes from a real slapd (ldap_pop3_enabled_attribute,
ldap_pop3_plaintext_attribute, ldap_login_delay_attribute); RFC 2449
LOGIN-DELAY advertised before and after login, enforced across workers and a
worker restart, or let in and logged, and counted.

A refused account is told so only after a right password: a wrong one gets
the same -ERR [AUTH] as any wrong password. A login answered from the
credential cache (the worker's memo, or the helper's verifier store after
the worker was replaced) obeys the policy as well."""

import grp
import os
import re
import signal
import subprocess
import unittest

from fastpop_harness import AUTH_USER, BIN, IS_ROOT, Daemon, DaemonTest, main, wait_until
from ldap_fixture import Slapd, hash_ssha, ldap_config, person, secret_file
from tls_fixture import TlsTest, client_context, starttls

FAILED = "-ERR [AUTH] Authentication failed"
USERS = {
    "alice": ("alice-secret", ""),
    "off": ("off-secret", "disablepop3=1"),
    "tlsonly": ("tls-secret", "disableinsecurepop3=1"),
    "broken": ("broken-secret", "pop3_login_delay=soon"),
}


def write_passwd(d, users):
    with open(d.passwd, "w") as f:
        for name, (password, extra) in users.items():
            f.write("%s:{PLAIN}%s::::::%s\n" % (name, password, extra))
            d.maildir(name)
    if IS_ROOT:
        os.chown(d.passwd, 0, grp.getgrnam(AUTH_USER).gr_gid)
        os.chmod(d.passwd, 0o640)


def login(p, user, password):
    r = p.cmd("USER " + user)
    assert r.startswith("+OK"), r
    return p.cmd("PASS " + password)


class PasswdFilePolicy(TlsTest):
    """plaintext_auth = yes: the global policy lets everyone log in without TLS."""

    workers = 1
    plaintext_auth = "yes"
    autostart = False

    def setUp(self):
        super().setUp()
        # Debug: the helper's "auth ok ... reason=cached" shows where an answer came from.
        self.d.write_config(self.full_config().replace("log_level = info", "log_level = debug"))
        write_passwd(self.d, USERS)
        self.d.start()

    def plain(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        return p

    def test_disablepop3_refused_after_right_password_only(self):
        self.assertEqual(login(self.plain(), "off", "wrong"), FAILED)
        self.assertEqual(login(self.plain(), "nobody", "wrong"), FAILED)
        r = login(self.plain(), "off", "off-secret")
        self.assertTrue(r.startswith("-ERR [SYS/PERM] "), r)
        self.d.wait_log("auth refused user=off")
        self.assertTrue(login(self.plain(), "alice", "alice-secret").startswith("+OK"))

    def test_unreadable_policy_value_is_temporary(self):
        r = login(self.plain(), "broken", "broken-secret")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP] "), r)
        self.d.wait_log("pop3_login_delay has a value that cannot be read")
        self.assertEqual(login(self.plain(), "broken", "wrong"), FAILED)

    def test_disableinsecurepop3_needs_tls_also_from_the_cache(self):
        self.assertEqual(login(self.plain(), "tlsonly", "wrong"), FAILED)
        r = login(self.plain(), "tlsonly", "tls-secret")
        self.assertTrue(r.startswith("-ERR [AUTH] ") and "TLS" in r, r)
        self.d.wait_log("reason=plaintext cache=miss")
        # AUTH PLAIN is the same login.
        p = self.plain()
        r = p.cmd("AUTH PLAIN AHRsc29ubHkAdGxzLXNlY3JldA==")   # \0tlsonly\0tls-secret
        self.assertTrue(r.startswith("-ERR [AUTH] "), r)
        # Over STLS: accepted, and remembered by the worker and the helper's cache.
        p = starttls(self.plain(), client_context(self.ca))
        self.assertTrue(login(p, "tlsonly", "tls-secret").startswith("+OK Logged in"))
        p.cmd("QUIT")
        # The worker's memo answers now: the policy came with the login list's record.
        r = login(self.plain(), "tlsonly", "tls-secret")
        self.assertTrue(r.startswith("-ERR [AUTH] "), r)
        self.d.wait_log("reason=plaintext cache=hit")
        # A new worker has no memo: the helper answers from its verifier store.
        old = self.d.workers_pids()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: self.d.workers_pids() and not set(self.d.workers_pids()) & set(old),
                   what="a new worker")
        before = self.d.log().count("reason=cached")
        r = login(self.plain(), "tlsonly", "tls-secret")
        self.assertTrue(r.startswith("-ERR [AUTH] "), r)
        self.assertGreater(self.d.log().count("reason=cached"), before)


# Attributes inetOrgPerson has, standing in for a site schema's own.
ENABLED, PLAINTEXT, DELAY, EXPIRE = "employeeType", "carLicense", "roomNumber", "departmentNumber"
LDAP_USERS = {"lok": ("lok-pw", {DELAY: "3600"}),
              "loff": ("loff-pw", {ENABLED: "FALSE"}),
              "lon": ("lon-pw", {ENABLED: "TRUE", PLAINTEXT: "TRUE"}),
              "lclear": ("lclear-pw", {PLAINTEXT: "FALSE"}),
              "lodd": ("lodd-pw", {ENABLED: "sometimes"}),
              "lexp": ("lexp-pw", {EXPIRE: "0"})}


def ldap_person(uid, password, attrs):
    return person(uid, hash_ssha(password)) + "".join("%s: %s\n" % kv for kv in attrs.items())


class LdapPolicy(unittest.TestCase):
    def setUp(self):
        self.slapd = Slapd([ldap_person(u, pw, a) for u, (pw, a) in LDAP_USERS.items()]).start()
        self.addCleanup(self.slapd.cleanup)
        self.d = Daemon(workers=1, users={"local": "local-secret"})
        self.addCleanup(self.d.cleanup)
        secret = secret_file(self.d.dir)
        self.d.extra_config = ldap_config(
            self.slapd.uri, secret, "bind",
            "ldap_pop3_enabled_attribute = %s\nldap_pop3_plaintext_attribute = %s\n"
            "ldap_login_delay_attribute = %s\nldap_expire_attribute = %s\n"
            % (ENABLED, PLAINTEXT, DELAY, EXPIRE))
        self.d.write_config()
        for u in LDAP_USERS:
            self.d.maildir(u)
        self.d.start()

    def login(self, user, password):
        p = self.d.connect()
        try:
            self.assertTrue(p.line().startswith("+OK"))
            return login(p, user, password)
        finally:
            p.close()

    def test_attributes(self):
        self.assertTrue(self.login("lok", "lok-pw").startswith("+OK Logged in"))
        # lok's own LOGIN-DELAY (the global one is 0): the second login is too soon.
        self.assertTrue(self.login("lok", "lok-pw").startswith("-ERR [LOGIN-DELAY] "))
        self.assertTrue(self.login("lon", "lon-pw").startswith("+OK Logged in"))
        self.assertEqual(self.login("loff", "wrong"), FAILED)
        r = self.login("loff", "loff-pw")
        self.assertTrue(r.startswith("-ERR [SYS/PERM] "), r)
        self.d.wait_log("reason=pop3-disabled")
        r = self.login("lclear", "lclear-pw")
        self.assertTrue(r.startswith("-ERR [AUTH] ") and "TLS" in r, r)
        self.assertEqual(self.login("lclear", "wrong"), FAILED)
        # Not a boolean: not guessed at, the login waits for the directory to be fixed.
        r = self.login("lodd", "lodd-pw")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP] "), r)
        self.d.wait_log("reason=policy-attribute")
        self.assertEqual(self.login("lodd", "wrong"), FAILED)

    def test_expire_attribute(self):
        self.d.deliver("lexp", b"Subject: x\n\nbody\n")
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        self.assertIn("EXPIRE NEVER USER", capa(p))
        self.assertTrue(login(p, "lexp", "lexp-pw").startswith("+OK Logged in"))
        self.assertIn("EXPIRE 0", capa(p))
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        p.multiline()
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 1 messages deleted (1 expired)")
        self.assertEqual(self.d.messages("lexp"), [])



def capa(p):
    r = p.cmd("CAPA")
    assert r.startswith("+OK"), r
    return p.multiline().decode().split("\r\n")[:-1]


class LoginDelay(DaemonTest):
    """pop3_login_delay = 1h; bob's own is 0, carol's 1 s; two workers share the record."""

    workers = 2
    action = "refuse"

    def setUp(self):
        self.extra_config = ("pop3_login_delay = 1h\npop3_login_delay_action = %s\n"
                             % self.action)
        super().setUp()
        write_passwd(self.d, {"alice": ("alice-secret", ""),
                              "bob": ("bob-secret", "pop3_login_delay=0"),
                              "carol": ("carol-secret", "pop3_login_delay=1")})
        self.d.start()

    def session(self, user, password):
        """Log in; returns (the PASS answer, CAPA lines after it or None)."""
        p = self.d.connect()
        try:
            assert p.line().startswith("+OK")
            r = login(p, user, password)
            caps = capa(p) if r.startswith("+OK") else None
            p.cmd("QUIT")
            return r, caps
        finally:
            p.close()

    def early(self, action):
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s",
                            os.path.join(self.d.run_dir, "control.sock"), "stats",
                            "--prometheus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r'^fastpop_login_delay_early_total\{action="%s"\} (\d+)$' % action,
                      r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        return int(m.group(1))

    def test_advertised_and_enforced(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        self.assertIn("LOGIN-DELAY 3600 USER", capa(p))
        r, caps = self.session("alice", "alice-secret")
        self.assertTrue(r.startswith("+OK Logged in"), r)
        self.assertIn("LOGIN-DELAY 3600", caps)
        # Every connection, whichever worker takes it: refused, after the password only.
        for _ in range(4):
            r, _ = self.session("alice", "alice-secret")
            self.assertTrue(r.startswith("-ERR [LOGIN-DELAY] "), r)
            self.assertEqual(self.session("alice", "wrong")[0], FAILED)
        self.assertEqual(self.early("refused"), 4)
        self.d.wait_log("reason=login-delay login_delay=3600")
        # A new worker still knows the last login.
        old = self.d.workers_pids()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(set(self.d.workers_pids()) - set(old)) == self.workers,
                   what="new workers")
        self.assertTrue(self.session("alice", "alice-secret")[0].startswith("-ERR [LOGIN-DELAY]"))

    def test_users_own_values(self):
        for _ in range(2):
            r, caps = self.session("bob", "bob-secret")
            self.assertTrue(r.startswith("+OK Logged in"), r)
            self.assertIn("LOGIN-DELAY 0", caps)
        r, caps = self.session("carol", "carol-secret")
        self.assertIn("LOGIN-DELAY 1", caps)
        self.assertTrue(self.session("carol", "carol-secret")[0].startswith("-ERR [LOGIN-DELAY]"))
        # Past her second: in again (a generous deadline, not a timing assertion).
        wait_until(lambda: self.session("carol", "carol-secret")[0].startswith("+OK"),
                   timeout=10, interval=0.5, what="carol's next login")


class LoginDelayLogged(LoginDelay):
    action = "log"

    def test_advertised_and_enforced(self):
        self.assertTrue(self.session("alice", "alice-secret")[0].startswith("+OK Logged in"))
        r, caps = self.session("alice", "alice-secret")
        self.assertTrue(r.startswith("+OK Logged in"), r)
        self.d.wait_log("login early user=alice")
        self.assertEqual(self.early("logged"), 1)
        self.assertEqual(self.early("refused"), 0)

    def test_users_own_values(self):
        pass



class Expire(DaemonTest):
    """pop3_expire = 30; zed's own is 0, kim's 2."""

    workers = 1

    def setUp(self):
        self.extra_config = "pop3_expire = 30\n"
        super().setUp()
        write_passwd(self.d, {"ann": ("ann-secret", ""),
                              "zed": ("zed-secret", "pop3_expire=0"),
                              "kim": ("kim-secret", "pop3_expire=2")})
        for user in ("ann", "zed", "kim"):
            for i in range(3):
                self.d.deliver(user, b"Subject: %d\n\nbody %d\n" % (i, i),
                               name="%d.M%dP1.host" % (1700000000 + i, i))
        self.d.start()

    def session(self, user, commands, quit=True):
        p = self.d.connect()
        try:
            assert p.line().startswith("+OK")
            self.assertTrue(login(p, user, user + "-secret").startswith("+OK Logged in"))
            caps = capa(p)
            for command in commands:
                self.assertTrue(p.cmd(command).startswith("+OK"), command)
                if command.startswith(("RETR", "TOP")):
                    p.multiline()
            return caps, (p.cmd("QUIT") if quit else None)
        finally:
            p.close()

    def test_expire_0_removes_what_was_retrieved_at_quit_only(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        self.assertIn("EXPIRE 30 USER", capa(p))
        # Retrieved, but no QUIT: nothing happens, not even a record.
        caps, _ = self.session("zed", ["RETR 1"], quit=False)
        self.assertIn("EXPIRE 0", caps)
        _, bye = self.session("zed", ["STAT"])
        self.assertEqual(bye, "+OK Logging out, 0 messages deleted")
        self.assertEqual(len(self.d.messages("zed")), 3)
        # RETR and QUIT: that one goes; TOP is no retrieval; a DELE counts as a DELE.
        _, bye = self.session("zed", ["RETR 1", "TOP 2 0", "DELE 3"])
        self.assertEqual(bye, "+OK Logging out, 2 messages deleted (1 expired)")
        self.assertEqual(len(self.d.messages("zed")), 1)
        self.d.wait_log("expire user=zed messages=1 expire_days=0")
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s",
                            os.path.join(self.d.run_dir, "control.sock"), "stats",
                            "--prometheus"], capture_output=True, text=True, timeout=30)
        self.assertIn("fastpop_messages_expired_total 1\n", r.stdout)
        self.assertIn("fastpop_messages_deleted_total 2\n", r.stdout)

    def test_days_keep_retrieved_messages(self):
        caps, bye = self.session("kim", ["RETR 1", "RETR 2"])
        self.assertIn("EXPIRE 2", caps)
        self.assertEqual(bye, "+OK Logging out, 0 messages deleted")
        caps, bye = self.session("ann", ["RETR 1"])
        self.assertIn("EXPIRE 30", caps)
        self.assertEqual(bye, "+OK Logging out, 0 messages deleted")
        self.assertEqual(len(self.d.messages("kim")), 3)
        self.assertEqual(len(self.d.messages("ann")), 3)


if __name__ == "__main__":
    main()

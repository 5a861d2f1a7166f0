"""The user's own POP3 policy (issue 16 part 4, per-user access), end to end
against the real daemon and helper: passwd-file extra fields (disablepop3,
disableinsecurepop3, a value that cannot be read) and LDAP attributes from a
real slapd (ldap_pop3_enabled_attribute, ldap_pop3_plaintext_attribute).

A refused account is told so only after a right password: a wrong one gets
the same -ERR [AUTH] as any wrong password. A login answered from the
credential cache (the worker's memo, or the helper's verifier store after
the worker was replaced) obeys the policy as well."""

import grp
import os
import signal
import unittest

from fastpop_harness import AUTH_USER, IS_ROOT, Daemon, main, wait_until
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
ENABLED, PLAINTEXT = "employeeType", "carLicense"
LDAP_USERS = {"lok": ("lok-pw", {}),
              "loff": ("loff-pw", {ENABLED: "FALSE"}),
              "lon": ("lon-pw", {ENABLED: "TRUE", PLAINTEXT: "TRUE"}),
              "lclear": ("lclear-pw", {PLAINTEXT: "FALSE"}),
              "lodd": ("lodd-pw", {ENABLED: "sometimes"})}


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
            % (ENABLED, PLAINTEXT))
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


if __name__ == "__main__":
    main()

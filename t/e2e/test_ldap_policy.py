"""Stale-if-error serves only outages: when the directory refuses an account
(slapo-ppolicy lock, or a bind refused as unwilling / constraint violation /
insufficient access, as 389-ds and others answer for locked or disabled
accounts), the login fails at once and every cached login of that account is
forgotten, under whatever spelling of the name it was cached; when the
directory is down, busy or unavailable, a user who logged in before still
logs in from the stale cache.

Real slapd, started here: the ppolicy overlay locks an account the way an
administrator does (pwdAccountLockedTime = 000001010000Z), and slapo-retcode
makes slapd answer binds with chosen result codes (its items live under
ou=errors: moving an entry there is how a test makes the directory start
answering that code for the account)."""

import time
import unittest

from fastpop_harness import Daemon, main
from ldap_fixture import SUFFIX, Slapd, hash_ssha, ldap_config, person, secret_file

PASSWORDS = {"lalice": "alice-pw", "lbob": "bob-pw", "lrefused53": "r53-pw",
             "lrefused19": "r19-pw", "lrefused50": "r50-pw", "lbusy51": "b51-pw",
             "lunavail52": "u52-pw", "lnever51": "n51-pw"}
# Bind result codes slapo-retcode answers for entries under ou=errors.
RETCODES = {"lrefused53": 53, "lrefused19": 19, "lrefused50": 50, "lbusy51": 51,
            "lunavail52": 52, "lnever51": 51}
PPOLICY = ("dn: ou=policies,%s\nobjectClass: organizationalUnit\nou: policies\n" % SUFFIX,
           "dn: cn=default,ou=policies,%s\nobjectClass: organizationalRole\n"
           "objectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\n"
           "pwdLockout: TRUE\npwdMaxFailure: 50\n" % SUFFIX)
# The fresh cache answers in the workers for this long; past it, every login asks the helper.
FRESH_TTL = 1


def directory_conf():
    items = "".join('retcode-item "uid=%s" %d op=bind\n' % (u, c) for u, c in RETCODES.items())
    return ('overlay ppolicy\nppolicy_default "cn=default,ou=policies,%s"\n'
            'overlay retcode\nretcode-parent "ou=errors,%s"\n%s' % (SUFFIX, SUFFIX, items))


def start_slapd():
    entries = list(PPOLICY) + [person(u, hash_ssha(pw)) for u, pw in PASSWORDS.items()]
    return Slapd(entries, modules=("ppolicy", "retcode"), database_conf=directory_conf()).start()


class LdapPolicyTest(unittest.TestCase):
    def setUp(self):
        self.slapd = start_slapd()
        self.addCleanup(self.slapd.cleanup)
        self.d = Daemon(workers=1, users={"local": "local-secret"})
        self.addCleanup(self.d.cleanup)
        secret = secret_file(self.d.dir)
        self.d.extra_config = ldap_config(self.slapd.uri, secret, "bind",
                                          "auth_cache_ttl = %ds\n" % FRESH_TTL)
        self.d.write_config()
        for u in PASSWORDS:
            self.d.maildir(u)
        self.d.start()

    def login(self, user, password):
        p = self.d.connect()
        try:
            self.assertTrue(p.line().startswith("+OK"))
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            return p.cmd("PASS " + password)
        finally:
            p.close()

    def assert_login(self, user, expected, password=None):
        r = self.login(user, password or PASSWORDS[user.lower()])
        self.assertTrue(r.startswith(expected), "%s: %r" % (user, r))

    def move_to_errors(self, uid):
        """From now on slapd answers binds of uid with RETCODES[uid]."""
        self.slapd.modify("dn: uid=%s,ou=people,%s\nchangetype: delete\n\n" % (uid, SUFFIX) +
                          add_ldif(person(uid, hash_ssha(PASSWORDS[uid]), ou="errors")),
                          manage_dsa_it=True)

    def test_ppolicy_lock_fails_and_forgets_every_spelling(self):
        # Two spellings of one account, both cached (as one canonical user); lbob stays good.
        self.assert_login("lalice", "+OK")
        self.assert_login("LALICE", "+OK")
        self.assert_login("lbob", "+OK")
        self.slapd.modify("dn: uid=lalice,ou=people,%s\nchangetype: modify\n"
                          "replace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n"
                          % SUFFIX)
        time.sleep(FRESH_TTL + 0.5)
        # Locked: a plain failure, neither ok from the cache nor a tempfail.
        self.assert_login("lalice", "-ERR [AUTH]")
        self.d.wait_log("credential cache: forgot 2 cached login(s) of user=lalice")
        # The directory goes away: nothing vouches for the locked account any more,
        # under either spelling, while a good user still logs in from the stale cache.
        self.slapd.stop()
        self.assert_login("lalice", "-ERR [AUTH]")
        self.assert_login("LALICE", "-ERR [SYS/TEMP]")
        self.assert_login("lbob", "+OK")
        self.d.wait_log("auth ok from the stale credential cache user=lbob")
        self.assertNotIn("stale credential cache user=LALICE", self.d.log())
        self.assertNotIn("stale credential cache user=lalice", self.d.log())

    def test_refusals_fail_and_outages_serve_stale(self):
        for uid in RETCODES:
            if uid != "lnever51":
                self.assert_login(uid, "+OK")
        time.sleep(FRESH_TTL + 0.5)
        for uid in RETCODES:
            self.move_to_errors(uid)
        for uid in ("lrefused53", "lrefused19", "lrefused50"):
            # A refusal is the directory's answer about the account: no stale login.
            self.assert_login(uid, "-ERR [AUTH]")
            self.assert_login(uid, "-ERR [AUTH]")
            self.assertNotIn("stale credential cache user=%s " % uid, self.d.log())
        # Another password for a refused account: refused again, without reading the
        # whole cache again (it knows the account has no cached login left).
        self.assert_login("lrefused53", "-ERR [AUTH]", password="another-pw")
        self.d.wait_log("reason=account-refused", count=4)
        self.assertEqual(self.d.log().count("cached login(s) of user=lrefused53 "), 1)
        for uid in ("lbusy51", "lunavail52"):
            # Busy and unavailable are outages: the stale entry answers.
            self.assert_login(uid, "+OK")
            self.d.wait_log("auth ok from the stale credential cache user=%s " % uid)
        # An outage with nothing cached is a temporary failure.
        self.assert_login("lnever51", "-ERR [SYS/TEMP]")
        # The password file does not depend on LDAP.
        self.assertTrue(self.login("local", "local-secret").startswith("+OK"))


def add_ldif(entry):
    """An entry as an ldapmodify add."""
    first, rest = entry.split("\n", 1)
    return first + "\nchangetype: add\n" + rest


if __name__ == "__main__":
    main()

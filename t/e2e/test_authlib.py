"""passdb = authlib against the real courier-authdaemond (Debian
courier-authdaemon with authuserdb users made by userdbpw and makeuserdb),
started here in its own mount namespace (t/e2e/authlib_fixture.py): a good
login end to end with USER/PASS and AUTH PLAIN (Courier's default maildir
HOME/Maildir, and an absolute MAIL), a wrong password, a missing user,
disablepop3=1 and a uid other than the mail user's refused with
-ERR [SYS/PERM], disableinsecurepop3=1 refused without TLS with -ERR [AUTH],
only the helper's group reaching the socket, more logins at once than the
helper has authdaemond connections, passwd-file before authlib, and
authdaemond down: a temporary failure, or a login from the stale credential
cache for a user who logged in before."""

import base64
import grp
import os
import pwd
import socket
import threading
import time
import unittest

from authlib_fixture import Authdaemond, available, userdbpw
from fastpop_harness import AUTH_USER, MAIL_GROUP, MAIL_USER, Daemon, main

PASSWORDS = {"calice": "alice-courier-pw", "cbob": "bob-courier-pw",
             "ccarol": "carol-courier-pw", "cdave": "dave-courier-pw",
             "cerin": "erin-courier-pw"}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def userdb_users(mail):
    """calice: HOME only; cdave: an absolute MAIL; cbob: POP3 disabled; ccarol: another uid;
    cerin: no login without TLS."""
    uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
    other = pwd.getpwnam(AUTH_USER).pw_uid

    def entry(name, **extra):
        fields = {"uid": uid, "gid": gid, "home": os.path.join(mail, name),
                  "systempw": userdbpw(PASSWORDS[name])}
        fields.update(extra)
        return fields
    return {"calice": entry("calice"),
            "cdave": entry("cdave", mail=os.path.join(mail, "cdave", "Maildir")),
            "cbob": entry("cbob", options="disablepop3=1"),
            "ccarol": entry("ccarol", uid=other),
            "cerin": entry("cerin", options="disableinsecurepop3=1")}


class AuthlibTest(unittest.TestCase):
    def setUp(self):
        why = available()
        if why:
            self.skipTest(why)
        self.d = Daemon(workers=1, users={"local": "local-secret"})
        self.addCleanup(self.d.cleanup)
        helper_group = grp.getgrgid(pwd.getpwnam(AUTH_USER).pw_gid).gr_name
        self.courier = Authdaemond(userdb_users(self.d.mail), helper_group)
        self.addCleanup(self.courier.cleanup)
        self.courier.start()
        for u in PASSWORDS:
            self.d.maildir(u)
        self.configure("authlib")
        self.d.start()

    def configure(self, passdb):
        # Courier's own default maildir: HOME/Maildir (the harness sets its own template).
        text = self.d.config_text("passdb = %s\nauthlib_socket = %s\nauthlib_timeout = 3s\n"
                                  "auth_cache_ttl = 1s\n" % (passdb, self.courier.socket))
        text = "\n".join(line for line in text.splitlines() if not line.startswith("maildir ="))
        self.d.write_config(text + "\nmaildir = %h/Maildir\n")

    def login(self, user, password, plain=False):
        p = self.d.connect()
        try:
            self.assertTrue(p.line().startswith("+OK"))
            if plain:
                return p.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password))), p
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            return p.cmd("PASS " + password), p
        except Exception:
            p.close()
            raise

    def assert_answer(self, user, password, expected, plain=False):
        r, p = self.login(user, password, plain)
        p.close()
        self.assertTrue(r.startswith(expected), "%s: %r\n%s" % (user, r, self.d.log()))

    def test_good_logins_read_the_maildir(self):
        self.d.deliver("calice", "Subject: one\r\n\r\nbody\r\n")
        self.d.deliver("cdave", "Subject: two\r\n\r\nbody\r\n")
        for user, plain in (("calice", False), ("calice", True), ("cdave", False),
                            ("cdave", True)):
            r, p = self.login(user, PASSWORDS[user], plain)
            try:
                self.assertTrue(r.startswith("+OK"), "%s: %r\n%s" % (user, r, self.d.log()))
                self.assertTrue(p.cmd("STAT").startswith("+OK 1 "))
                self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            finally:
                p.close()

    def test_wrong_password_and_missing_user_fail(self):
        self.assert_answer("calice", "not-the-password", "-ERR [AUTH]")
        self.assert_answer("nosuchuser", "whatever", "-ERR [AUTH]")
        # Another name: the first one's failure is in the negative cache now.
        self.assert_answer("nosuchuser2", "whatever", "-ERR [AUTH]", plain=True)
        self.d.wait_log("auth failed user=nosuchuser2 ip=127.0.0.1 mechanism=PLAIN "
                        "reason=bad-login")
        self.assertIn("auth failed user=calice", self.d.log())

    def test_disablepop3_and_foreign_uid_are_refused_permanently(self):
        self.assert_answer("cbob", PASSWORDS["cbob"], "-ERR [SYS/PERM]")
        self.assert_answer("cbob", PASSWORDS["cbob"], "-ERR [SYS/PERM]", plain=True)
        self.d.wait_log("auth refused user=cbob ip=127.0.0.1 mechanism=USER reason=pop3-disabled")
        self.assert_answer("ccarol", PASSWORDS["ccarol"], "-ERR [SYS/PERM]")
        self.d.wait_log("reason=foreign-uid")
        # A wrong password of a refused account is still just a failed login.
        self.assert_answer("cbob", "wrong", "-ERR [AUTH]")

    def test_disableinsecurepop3_refuses_plaintext(self):
        # plaintext_auth = yes lets everyone else in without TLS; not cerin (OPTIONS).
        for plain in (False, True):
            r, p = self.login("cerin", PASSWORDS["cerin"], plain)
            p.close()
            self.assertTrue(r.startswith("-ERR [AUTH] ") and "TLS" in r, r)
        self.d.wait_log("login refused user=cerin ip=127.0.0.1 mechanism=USER reason=plaintext")
        self.assert_answer("cerin", "wrong", "-ERR [AUTH] Authentication failed")
        self.assert_answer("calice", PASSWORDS["calice"], "+OK")

    def test_more_logins_at_once_than_connections(self):
        # 16 clients at once, twice the helper's 8 authdaemond connections: the rest
        # queue, and every one is answered (bounded by the sockets' 10 s timeouts).
        results = []

        def one(k):
            user = ("calice", "cdave")[k % 2]
            try:
                r, p = self.login(user, PASSWORDS[user])
                p.close()
                results.append(r)
            except Exception as e:   # recorded, asserted below
                results.append(repr(e))
        threads = [threading.Thread(target=one, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 16)
        # Accepted: logged in, or the password was right and another of these
        # sessions holds the mailbox. Never a temporary failure.
        self.assertTrue(all(r.startswith(("+OK", "-ERR [IN-USE]")) for r in results), results)
        self.assertGreater(sum(r.startswith("+OK") for r in results), 0)

    def test_file_first_then_authlib(self):
        self.d.stop()
        # The file's user needs a home for the template %h/Maildir (the harness gives none).
        with open(self.d.passwd, "w") as f:
            f.write("local:{PLAIN}local-secret::::%s::\n" % os.path.join(self.d.mail, "local"))
        self.configure("passwd-file authlib")
        self.d.start()
        self.assert_answer("local", "local-secret", "+OK")
        self.assert_answer("calice", PASSWORDS["calice"], "+OK")
        self.assert_answer("cbob", PASSWORDS["cbob"], "-ERR [SYS/PERM]")

    def test_only_the_helper_group_reaches_the_socket(self):
        # The worker's user (the mail user) cannot connect; root's helper group can.
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setgroups([])
                os.setgid(grp.getgrnam(MAIL_GROUP).gr_gid)
                os.setuid(pwd.getpwnam(MAIL_USER).pw_uid)
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.courier.socket)
                code = 0
            except PermissionError:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 1)

    def test_authdaemond_down_tempfails_or_serves_stale(self):
        self.assert_answer("calice", PASSWORDS["calice"], "+OK")
        time.sleep(1.5)   # past auth_cache_ttl: every login asks the helper again
        self.courier.stop()
        # Never logged in: nothing to stand in for authdaemond.
        self.assert_answer("cdave", PASSWORDS["cdave"], "-ERR [SYS/TEMP]")
        self.d.wait_log("auth tempfail user=cdave ip=127.0.0.1 mechanism=USER reason=authlib-down")
        # Logged in before: stale-if-error.
        self.assert_answer("calice", PASSWORDS["calice"], "+OK")
        self.d.wait_log("auth ok from the stale credential cache user=calice")
        # The stale entry is no way around a wrong password.
        self.assert_answer("calice", "wrong", "-ERR")
        # Back up: answered by authdaemond again.
        self.courier.start()
        self.assert_answer("cdave", PASSWORDS["cdave"], "+OK")


if __name__ == "__main__":
    main()

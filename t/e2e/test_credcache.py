"""The shared credential cache against the real fastpopd: a fresh entry
logs in without asking the helper (counted in the helper's debug log),
a wrong password is refused from the cache only at the helper, stale
entries carry logins while the backend is down, a helper killed mid-login,
popctl auth flush, a restart keeping the cache, and the file modes."""
import base64
import os
import pwd
import grp
import signal
import stat
import subprocess
import time

from fastpop_harness import (BIN, IS_ROOT, AUTH_USER, MAIL_GROUP, DaemonTest, main,
                             wait_until)

DEBUG = "auth_mechanisms = PLAIN LOGIN SCRAM-SHA-256\n"


class CacheCase(DaemonTest):
    # One worker: a worker answers only the logins it saw the helper accept.
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    extra_config = DEBUG

    def setUp(self):
        super().setUp()
        self.d.write_config(self.d.config_text().replace("log_level = info",
                                                         "log_level = debug"))

    def login(self, user, password, mech="USER"):
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        if mech == "PLAIN":
            r = p.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, password))
                                                       .encode()).decode())
        else:
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            r = p.cmd("PASS " + password)
        p.cmd("QUIT")
        p.close()
        return r

    def helper_checks(self, user):
        """How many password checks the helper has answered for user (its debug log)."""
        log = self.d.log()
        return (log.count("auth ok user=%s " % user) + log.count("auth failed user=%s " % user)
                + log.count("auth tempfail user=%s " % user))

    def popctl(self, *args):
        return subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf] + list(args),
                              capture_output=True, text=True, timeout=20)


class HitPath(CacheCase):
    def test_hit_makes_no_helper_request(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("mechanism=USER messages=0 cache=miss")
        self.assertEqual(self.helper_checks("alice"), 1)
        for mech in ("USER", "PLAIN", "USER"):
            self.assertTrue(self.login("alice", "alice-secret", mech).startswith("+OK"))
        self.d.wait_log("cache=hit", count=3)
        self.assertEqual(self.helper_checks("alice"), 1, self.d.log()[-3000:])
        # Another password is not the cached one: it goes to the helper.
        self.assertTrue(self.login("alice", "wrong").startswith("-ERR [AUTH]"))
        self.d.wait_log("auth failed user=alice ")
        self.assertEqual(self.helper_checks("alice"), 2)

    def test_negative_entry_answered_by_helper_without_backend(self):
        self.d.start()
        self.assertTrue(self.login("bob", "old-password").startswith("-ERR [AUTH]"))
        self.d.wait_log("auth failed user=bob ip=127.0.0.1 mechanism=USER reason=bad-password")
        self.assertTrue(self.login("bob", "old-password").startswith("-ERR [AUTH]"))
        self.d.wait_log("auth failed user=bob ip=127.0.0.1 mechanism=USER reason=cached-failure")
        # The worker logged both as failed logins, like any other.
        self.assertEqual(self.d.log().count("login failed user=bob "), 2)
        # An unknown user is treated the same way: nothing tells it apart.
        self.login("nobody", "x")
        self.login("nobody", "x")
        self.d.wait_log("auth failed user=nobody ip=127.0.0.1 mechanism=USER reason=cached-failure")

    def test_restart_keeps_cache_and_modes(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.stop()
        self.d.start()
        # The new worker remembers nothing; the helper answers from its store, not the file...
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("auth ok user=alice ip=127.0.0.1 mechanism=USER reason=cached")
        # ...and the worker answers the next one itself.
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("cache=hit")
        cache = os.path.join(self.d.dir, "state", "authcache")
        data = os.stat(os.path.join(cache, "logins.mdb"))
        lock = os.stat(os.path.join(cache, "logins.mdb-lock"))
        top = os.stat(cache)
        self.assertEqual(stat.S_IMODE(data.st_mode) & 0o007, 0)
        self.assertEqual(stat.S_IMODE(lock.st_mode) & 0o007, 0)
        self.assertEqual(stat.S_IMODE(top.st_mode) & 0o007, 0)
        if IS_ROOT:
            self.assertEqual(stat.S_IMODE(top.st_mode), 0o2750)
            self.assertEqual(stat.S_IMODE(data.st_mode), 0o640)
            self.assertEqual(stat.S_IMODE(lock.st_mode), 0o660)
            auth_uid = pwd.getpwnam(AUTH_USER).pw_uid
            mail_gid = grp.getgrnam(MAIL_GROUP).gr_gid
            for st in (top, data, lock):
                self.assertEqual((st.st_uid, st.st_gid), (auth_uid, mail_gid))
        for name in ("logins.mdb", "private/verifiers.mdb"):
            with open(os.path.join(cache, name), "rb") as f:
                self.assertNotIn(b"alice-secret", f.read())

    def test_popctl_flush(self):
        self.d.start()
        for user in ("alice", "bob"):
            self.assertTrue(self.login(user, self.d.users[user]).startswith("+OK"))
        r = self.popctl("auth", "flush", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 entry removed", r.stdout)
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.assertTrue(self.login("bob", "bob-secret").startswith("+OK"))
        self.d.wait_log("login user=alice ip=127.0.0.1 mechanism=USER messages=0 cache=miss",
                        count=2)
        self.d.wait_log("login user=bob ip=127.0.0.1 mechanism=USER messages=0 cache=hit")
        r = self.popctl("auth", "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 entries removed", r.stdout)
        self.assertNotEqual(self.popctl("auth", "wipe").returncode, 0)


class Outage(CacheCase):
    extra_config = DEBUG + "auth_cache_ttl = 1s\n"

    def test_stale_if_error(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        time.sleep(1.2)   # past auth_cache_ttl: the entry is stale now
        os.chmod(self.d.passwd, 0)
        try:
            r = self.login("alice", "alice-secret")
            self.assertTrue(r.startswith("+OK"), r)
            self.d.wait_log("auth ok from the stale credential cache user=alice ip=127.0.0.1")
            self.assertTrue(self.login("alice", "wrong").startswith("-ERR [SYS/TEMP]"))
            self.assertTrue(self.login("bob", "bob-secret").startswith("-ERR [SYS/TEMP]"))
        finally:
            os.chmod(self.d.passwd, 0o640)
        self.assertTrue(self.login("bob", "bob-secret").startswith("+OK"))


class HelperKilled(CacheCase):
    extra_config = DEBUG

    def test_kill_helper_mid_login(self):
        # slow: a sha512-crypt with 30 million rounds keeps the helper busy for seconds.
        with open(self.d.passwd, "a") as f:
            f.write("slow:$6$rounds=30000000$saltsalt$%s::::::\n" % ("x" * 86))
        self.d.maildir("slow")
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        helper = self.d.helper_pids()[0]
        p = self.d.connect()
        p.line()
        p.cmd("USER slow")
        p.send("PASS whatever\r\n")
        time.sleep(0.5)
        os.kill(helper, signal.SIGKILL)
        r = p.line()
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        p.close()
        # Cached users keep logging in, with or without a helper.
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        # The master starts a new helper; uncached users work again.
        def replaced():
            # One snapshot per check: a child just forked looks like a worker until it execs.
            now = self.d.helper_pids()
            return len(now) == 1 and now[0] != helper
        wait_until(replaced, timeout=15, what="a new helper")

        def bob_ok():
            return self.login("bob", "bob-secret").startswith("+OK")
        wait_until(bob_ok, timeout=15, interval=0.5, what="bob to log in via the new helper")


if __name__ == "__main__":
    main()

"""The credential cache split (issue 12, item 12a): no verifier of any
password, right or wrong, where a mail-uid process can read it.

- authcache/logins.mdb (the mail group reads it) holds per name only a time,
  a generation, the canonical user and the maildir: none of the salts or
  verifiers of the helper's records (authcache/private/verifiers.mdb) is in
  it, and the mail user cannot open the private store;
- a second login on the same worker is answered by that worker (cache=hit)
  without a helper request, from the worker's own memory;
- a repeat login that reaches the helper is answered from its private store
  without the backend (LDAP stopped), with no stale-if-error warning while
  the entry is fresh;
- the previous format's files (authcache/data.mdb, lock.mdb) are deleted at
  start, never read."""
import os
import pwd
import re
import signal
import stat
import unittest

from fastpop_harness import (AUTH_USER, IS_ROOT, MAIL_USER, Daemon, DaemonTest, main,
                             wait_until)
from ldap_fixture import Slapd, hash_ssha, ldap_config, person, secret_file
from test_credcache import CacheCase

# A verifier record's head: version 4 (2 before the user's policy, 1 before the split), flags (1
# positive, 2 negative), a zero u16 and the iteration count (CREDCACHE_ITERATIONS:
# 2,048 now, 10,000 for a while, 1,024 before the split), little-endian u32.
RECORD_HEAD = re.compile(b"[\x01\x02\x04][\x01\x02\x03]\x00\x00(?:\x00\x08|\x10\x27|\x00\x04)"
                         b"\x00\x00", re.S)


def private_records(data):
    """(salt, verifiers) of every verifier record found in a file's bytes: version,
    flags, zero, iterations, salt, then the parts the flags say."""
    found = []
    for m in RECORD_HEAD.finditer(data):
        flags, p = data[m.start() + 1], m.end()
        salt, p = data[p:p + 16], p + 16
        verifiers = []
        if flags & 1:
            # after verified_at and (version 2 on) the generation
            skip = 16 if data[m.start()] >= 2 else 8
            verifiers.append(data[p + skip:p + skip + 32])
            p += skip + 32
            for _ in range(2):                      # user, maildir
                p += 2 + int.from_bytes(data[p:p + 2], "little")
            if data[m.start()] >= 4:
                p += 12                             # the user's policy
        if flags & 2:
            verifiers.append(data[p + 8:p + 40])
        found.append((salt, verifiers))
    return found


class SplitFiles(CacheCase):
    workers = 1

    def cache(self, *names):
        return os.path.join(self.d.dir, "state", "authcache", *names)

    def test_login_list_holds_no_verifier(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.assertTrue(self.login("bob", "bob-secret").startswith("+OK"))
        # a remembered failure (negative part) and one for a name that does not exist
        self.assertTrue(self.login("bob", "old-password").startswith("-ERR [AUTH]"))
        self.assertTrue(self.login("nobody", "guess").startswith("-ERR [AUTH]"))
        self.d.wait_log("auth failed user=nobody ")
        # Everything the mail group may read in authcache/ (the files, not private/).
        shared = b""
        for name in sorted(os.listdir(self.cache())):
            st = os.stat(self.cache(name))
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o044:
                with open(self.cache(name), "rb") as f:
                    shared += f.read()
        self.assertIn(b"/Maildir", shared)   # the workers' list is there...
        self.assertEqual(private_records(shared), [])   # ...but no verifier record
        with open(self.cache("private", "verifiers.mdb"), "rb") as f:
            private = f.read()
        records = private_records(private)
        # alice and bob (positive; bob also negative), nobody (negative only); LMDB may
        # keep older copies of a record in free pages, so count the salts
        self.assertEqual(len(set(salt for salt, _ in records)), 3, records)
        self.assertGreaterEqual(sum(len(v) for _, v in records), 4)
        for salt, verifiers in records:
            self.assertNotIn(salt, shared)
            for v in verifiers:
                self.assertNotIn(v, shared)
        for secret in (b"alice-secret", b"bob-secret", b"old-password", b"guess"):
            self.assertNotIn(secret, shared)
            self.assertNotIn(secret, private)
        # a failed name is not listed at all
        self.assertNotIn(b"nobody", shared)
        # the previous format's file is not there
        self.assertFalse(os.path.exists(self.cache("data.mdb")))

    @unittest.skipUnless(IS_ROOT, "needs root and the users vmail and fastpop")
    def test_private_store_out_of_mail_uid_reach(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        top = os.stat(self.cache("private"))
        self.assertEqual(top.st_uid, pwd.getpwnam(AUTH_USER).pw_uid)
        self.assertEqual(stat.S_IMODE(top.st_mode) & 0o077, 0)
        for name in ("verifiers.mdb", "verifiers.mdb-lock"):
            st = os.stat(self.cache("private", name))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, name)
        pw = pwd.getpwnam(MAIL_USER)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                os.setgroups([pw.pw_gid])
                os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
                os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
                with open(self.cache("logins.mdb"), "rb"):
                    pass     # the workers' list: readable
                try:
                    open(self.cache("private", "verifiers.mdb"), "rb").close()
                    code = 1
                except PermissionError:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_old_format_files_are_deleted(self):
        os.makedirs(self.cache(), exist_ok=True)
        with open(self.cache("data.mdb"), "wb") as f:
            f.write(b"\x01" * 4096)
        with open(self.cache("lock.mdb"), "wb") as f:
            f.write(b"\x00" * 4096)
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("credential cache: deleted the previous format's files")
        self.assertFalse(os.path.exists(self.cache("data.mdb")))
        self.assertFalse(os.path.exists(self.cache("lock.mdb")))
        self.d.wait_log("mechanism=USER messages=0 cache=miss")


class SameWorker(CacheCase):
    workers = 1

    def test_second_login_on_the_same_worker_is_a_hit(self):
        self.d.start()
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("user=alice ip=127.0.0.1 mechanism=USER messages=0 cache=miss")
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("user=alice ip=127.0.0.1 mechanism=USER messages=0 cache=hit")
        self.assertEqual(self.helper_checks("alice"), 1)
        # A wrong password is never answered by the worker.
        self.assertTrue(self.login("alice", "wrong").startswith("-ERR [AUTH]"))
        self.d.wait_log("auth failed user=alice ")
        self.assertEqual(self.helper_checks("alice"), 2)
        # After a flush the worker's memory does not vouch: the helper is asked again,
        # and the backend (the password file) answers, not a cached record.
        r = self.popctl("auth", "flush", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.login("alice", "alice-secret").startswith("+OK"))
        self.d.wait_log("user=alice ip=127.0.0.1 mechanism=USER messages=0 cache=miss", count=2)
        self.assertEqual(self.helper_checks("alice"), 3)
        self.assertNotIn("auth ok user=alice ip=127.0.0.1 mechanism=USER reason=cached",
                         self.d.log())


class HelperRepeatWithoutBackend(unittest.TestCase):
    """LDAP stopped, a fresh entry: the helper answers from its private store."""

    def setUp(self):
        self.slapd = Slapd([person("lalice", hash_ssha("alice-pw"))]).start()
        self.addCleanup(self.slapd.cleanup)
        self.d = Daemon(workers=1, users={"local": "local-secret"})
        self.addCleanup(self.d.cleanup)
        secret = secret_file(self.d.dir)
        self.d.extra_config = ldap_config(self.slapd.uri, secret, "bind")
        self.d.write_config(self.d.config_text().replace("log_level = info",
                                                         "log_level = debug"))
        self.d.maildir("lalice")
        self.d.start()

    def login(self, user, password):
        p = self.d.connect()
        try:
            self.assertTrue(p.line().startswith("+OK"))
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            return p.cmd("PASS " + password)
        finally:
            p.close()

    def test_repeat_login_answered_from_private_store(self):
        self.assertTrue(self.login("lalice", "alice-pw").startswith("+OK"))
        self.d.wait_log("login user=lalice ip=127.0.0.1 mechanism=USER messages=0 cache=miss")
        self.slapd.stop()
        # A new worker has no memory of the login: its repeat reaches the helper.
        worker = self.d.workers_pids()[0]
        os.kill(worker, signal.SIGKILL)

        def replaced():
            now = self.d.workers_pids()
            return len(now) == 1 and now[0] != worker
        wait_until(replaced, timeout=15, what="a new worker")
        self.d.wait_log("penalty view received from the auth helper", count=2, timeout=15)
        r = self.login("lalice", "alice-pw")
        self.assertTrue(r.startswith("+OK"), r)
        self.d.wait_log("auth ok user=lalice ip=127.0.0.1 mechanism=USER reason=cached")
        self.d.wait_log("login user=lalice ip=127.0.0.1 mechanism=USER messages=0 cache=miss",
                        count=2)
        self.assertNotIn("stale credential cache", self.d.log())
        # and now this worker remembers it too
        self.assertTrue(self.login("lalice", "alice-pw").startswith("+OK"))
        self.d.wait_log("login user=lalice ip=127.0.0.1 mechanism=USER messages=0 cache=hit")
        # a wrong password is not answered from the store: the directory is down
        r = self.login("lalice", "wrong")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)


if __name__ == "__main__":
    main()

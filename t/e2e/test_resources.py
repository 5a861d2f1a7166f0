"""When resources run out (issue 13, part 3): a damaged or foreign mailbox
index (garbage, cut short, zero bytes, another program's LMDB file) while
stopped and while running, a full state_dir, an index map at its size limit,
a read-only or full maildir filesystem. Logins and downloads go on from the maildir, the trouble is
logged once and counted (store_errors), the index is rebuilt, no worker
crashes twice for one damage.

Mounts (tmpfs, read-only binds) are made by the test as root and lazily
unmounted in its cleanup; without root the classes that need them skip."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from fastpop_harness import (BIN, IS_ROOT, MAIL_GROUP, MAIL_USER, DaemonTest, main,
                             wait_until)

# Another program's LMDB environment: named sub-databases, keys that are not ours.
FOREIGN_ENV_C = r"""
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    MDB_env *env; MDB_txn *txn; MDB_dbi dbi;
    static const char *const dbs[] = { "users", "sessions" };
    if (argc != 2 || mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) ||
        mdb_env_open(env, argv[1], 0, 0600) || mdb_txn_begin(env, NULL, 0, &txn))
        return 1;
    for (int d = 0; d < 2; d++) {
        if (mdb_dbi_open(txn, dbs[d], MDB_CREATE, &dbi))
            return 1;
        for (int i = 0; i < 50; i++) {
            char k[32], v[64];
            snprintf(k, sizeof(k), "key-%d", i);
            snprintf(v, sizeof(v), "some other program's value %d", i);
            MDB_val key = { strlen(k), k }, val = { strlen(v), v };
            if (mdb_put(txn, dbi, &key, &val, 0))
                return 1;
        }
    }
    return mdb_txn_commit(txn) ? 1 : 0;
}
"""


def foreign_env(test, directory, names=("data.mdb", "lock.mdb")):
    """Write another program's LMDB env into directory (a C program built now), as
    names (data file, lock file): LMDB's own names, or those of a one-file env."""
    if not shutil.which("cc"):
        test.skipTest("no C compiler")
    work = tempfile.mkdtemp(prefix="fp-foreign-")
    test.addCleanup(shutil.rmtree, work, True)
    src, exe = os.path.join(work, "foreign.c"), os.path.join(work, "foreign")
    with open(src, "w") as f:
        f.write(FOREIGN_ENV_C)
    subprocess.run(["cc", "-o", exe, src, "-llmdb"], check=True, timeout=120)
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    made = tempfile.mkdtemp(prefix="fp-foreign-env-")
    test.addCleanup(shutil.rmtree, made, True)
    subprocess.run([exe, made], check=True, timeout=30)
    # Owned like ours: a file of another owner is replaced for that reason alone.
    st = os.stat(directory)
    for made_name, name in zip(("data.mdb", "lock.mdb"), names):
        shutil.move(os.path.join(made, made_name), os.path.join(directory, name))
        os.chown(os.path.join(directory, name), st.st_uid, st.st_gid)


def session(d, user="alice", retr=False):
    """(STAT line, UIDL lines) of one session that QUITs; the body of RETR 1 if retr."""
    p = d.connect()
    try:
        r = p.login(user, d.users[user])
        if not r.startswith("+OK"):
            return r, None
        stat = p.cmd("STAT")
        assert p.cmd("UIDL").startswith("+OK")
        uidl = p.multiline().decode("latin-1").splitlines()
        if retr:
            assert p.cmd("RETR 1").startswith("+OK")
            p.multiline()
        p.cmd("QUIT")
        return stat, uidl
    finally:
        p.close()


def stats(d):
    r = subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "--json", "stats"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def store_errors(d, store):
    return stats(d).get("store_errors", {}).get(store, 0)


def restart(d):
    d.stop()
    d.log_file.close()
    d.start()


def mount(test, target, *args):
    """mount args... target, lazily unmounted at cleanup (before the daemon's dir goes)."""
    subprocess.run(["mount"] + list(args) + [target], check=True, timeout=30)
    test.addCleanup(subprocess.run, ["umount", "-l", target], timeout=30)


FAULTS_IN_LMDB = ("a reader faults inside LMDB on purpose, which a sanitizer reports "
                  "(the build without one runs it)")


def sanitized():
    """ASan reserves terabytes of address space: an RLIMIT_AS cannot be tested under it."""
    out = subprocess.run(["ldd", os.path.join(BIN, "fastpopd")], capture_output=True,
                         text=True, timeout=30).stdout
    return "libasan" in out or "libubsan" in out


def files(root):
    """cur/ and new/ of a maildir, read without touching it (it may be read-only)."""
    return sorted(sub + "/" + n for sub in ("cur", "new")
                  for n in os.listdir(os.path.join(root, sub)))


def crashes(d):
    return d.log().count("killed by signal")


class IndexDamage(DaemonTest):
    workers = 2

    def setUp(self):
        super().setUp()
        for i in range(40):
            self.d.deliver("alice", "Subject: %d\n\n%s\n" % (i, "body " * 30))
        self.index = os.path.join(self.d.dir, "state", "index")
        self.data = os.path.join(self.index, "data.mdb")

    def damage_while_stopped(self, how):
        d = self.d
        d.start()
        first = session(d)
        self.assertTrue(first[0].startswith("+OK 40 "), first[0])
        d.stop()
        d.log_file.close()
        how()
        d.start()
        for _ in range(3):
            self.assertEqual(session(d), first)
        return first

    def test_garbage_index_while_stopped_is_rebuilt(self):
        def garbage():
            with open(self.data, "r+b") as f:
                f.write(os.urandom(os.path.getsize(self.data)))
        self.damage_while_stopped(garbage)
        self.assertIn("was unreadable; started a new one", self.d.log()[self.d.log_start:])

    def test_index_cut_short_while_stopped_is_rebuilt(self):
        # Both meta pages intact, data pages gone: LMDB opens it and faults on a read.
        def cut():
            os.truncate(self.data, os.path.getsize(self.data) - 4096)
        self.damage_while_stopped(cut)
        self.assertIn("was unreadable; started a new one", self.d.log()[self.d.log_start:])
        self.assertEqual(crashes(self.d), 0)

    def test_zero_byte_index_and_garbage_lock_while_stopped(self):
        def zero():
            os.truncate(self.data, 0)
            with open(os.path.join(self.index, "lock.mdb"), "r+b") as f:
                f.write(os.urandom(4096))
        self.damage_while_stopped(zero)
        self.assertEqual(crashes(self.d), 0)

    def test_another_programs_lmdb_file_is_replaced(self):
        self.damage_while_stopped(lambda: foreign_env(self, self.index))
        self.assertIn("was unreadable; started a new one", self.d.log()[self.d.log_start:])
        # Ours now: the next start finds nothing to replace.
        restart(self.d)
        self.assertNotIn("started a new one", self.d.log()[self.d.log_start:])
        self.assertEqual(session(self.d)[0][:7], "+OK 40 ")

    def damage_while_running(self, how):
        """Damage the index under running workers: at most one fault per worker, then served."""
        if sanitized():
            self.skipTest(FAULTS_IN_LMDB)
        d = self.d
        d.start()
        first = session(d)
        session(d)
        how()
        served = 0
        deadline = time.time() + 60
        # Bounded: each login either is served or lost to a worker's one fault.
        for _ in range(40):
            if time.time() > deadline:
                break
            try:
                if session(d) == first:
                    served += 1
            except (OSError, EOFError, AssertionError):
                served = 0   # a worker that faulted on the damage took this session
            if served >= 5:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(served, 5, "never served again:\n" + d.log()[-3000:])
        self.assertLessEqual(crashes(d), self.workers)
        settled = crashes(d)
        for _ in range(5):
            self.assertEqual(session(d), first)
        self.assertEqual(crashes(d), settled)
        # The next start finds a sound index: nothing to replace.
        restart(d)
        self.assertNotIn("started a new one", d.log()[d.log_start:])
        self.assertEqual(session(d), first)

    def test_index_cut_short_while_running(self):
        self.damage_while_running(
            lambda: os.truncate(self.data, os.path.getsize(self.data) - 4096))

    def test_garbage_pages_while_running(self):
        def garbage():
            with open(self.data, "r+b") as f:
                f.seek(8192)    # the meta pages stay: LMDB trusts the rest
                f.write(os.urandom(os.path.getsize(self.data) - 8192))
        self.damage_while_running(garbage)

    def test_whole_file_garbage_while_running(self):
        def garbage():
            with open(self.data, "r+b") as f:
                f.write(os.urandom(os.path.getsize(self.data)))
        self.damage_while_running(garbage)


class CacheDamage(DaemonTest):
    """The credential cache's login list (state_dir/authcache/logins.mdb), which workers
    and the helper read. One worker: a worker answers from the cache only logins it saw
    the helper accept."""
    workers = 1

    def setUp(self):
        super().setUp()
        self.d.deliver("alice", "Subject: x\n\nbody\n")
        self.data = os.path.join(self.d.dir, "state", "authcache", "logins.mdb")

    def hits(self):
        return self.d.log().count("cache=hit")

    def served_with_hits_again(self):
        """Logins served, and the cache answers again (a hit) within a bounded wait."""
        d = self.d
        hits = self.hits()
        served = 0
        for _ in range(60):
            try:
                if session(d)[0].startswith("+OK 1 "):
                    served += 1
            except (OSError, EOFError, AssertionError):
                served = 0
            if served >= 3 and self.hits() > hits:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(served, 3, d.log()[-3000:])
        self.assertGreater(self.hits(), hits, "the cache never answered again")

    def damage_while_stopped(self, how):
        d = self.d
        d.start()
        session(d)
        session(d)
        self.assertGreaterEqual(self.hits(), 1)
        d.stop()
        d.log_file.close()
        how()
        d.start()
        self.assertIn("unreadable or not ours", d.log()[d.log_start:])
        self.served_with_hits_again()
        self.assertEqual(crashes(d), 0)
        restart(d)
        self.assertNotIn("unreadable or not ours", d.log()[d.log_start:])

    def test_garbage_cache_while_stopped(self):
        def garbage():
            with open(self.data, "r+b") as f:
                f.write(os.urandom(os.path.getsize(self.data)))
        self.damage_while_stopped(garbage)

    def test_garbage_verifier_store_while_stopped(self):
        """The helper's private store (private/verifiers.mdb) is checked the same way."""
        private = os.path.join(os.path.dirname(self.data), "private", "verifiers.mdb")

        def garbage():
            with open(private, "r+b") as f:
                f.write(os.urandom(os.path.getsize(private)))
        self.damage_while_stopped(garbage)

    def test_cache_cut_short_while_stopped(self):
        self.damage_while_stopped(
            lambda: os.truncate(self.data, os.path.getsize(self.data) - 4096))

    def test_another_programs_lmdb_file_as_cache(self):
        directory = os.path.dirname(self.data)
        self.damage_while_stopped(
            lambda: foreign_env(self, directory, ("logins.mdb", "logins.mdb-lock")))

    def test_garbage_cache_pages_while_running(self):
        if sanitized():
            self.skipTest(FAULTS_IN_LMDB)
        d = self.d
        d.start()
        session(d)
        session(d)
        with open(self.data, "r+b") as f:
            f.seek(8192)
            f.write(os.urandom(os.path.getsize(self.data) - 8192))
        # A worker (or the helper) may fault once on the damage; then it is replaced.
        # Garbage LMDB does not notice only costs misses until the next start.
        served = 0
        for _ in range(40):
            try:
                served = served + 1 if session(d)[0].startswith("+OK 1 ") else 0
            except (OSError, EOFError, AssertionError):
                served = 0
            if served >= 5:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(served, 5, d.log()[-3000:])
        self.assertLessEqual(crashes(d), self.workers + 1)
        settled = crashes(d)
        for _ in range(5):
            self.assertTrue(session(d)[0].startswith("+OK 1 "))
        self.assertEqual(crashes(d), settled)
        restart(d)
        self.served_with_hits_again()


@unittest.skipUnless(IS_ROOT, "mounts a tmpfs")
class StateDirFull(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def test_full_state_dir_logs_once_counts_and_recovers(self):
        d = self.d
        index = os.path.join(d.dir, "state", "index")
        os.makedirs(index)
        mount(self, index, "-t", "tmpfs", "-o", "size=256k,mode=0700,uid=%s,gid=%s" % (
            subprocess.check_output(["id", "-u", MAIL_USER], text=True).strip(),
            subprocess.check_output(["id", "-g", MAIL_USER], text=True).strip()), "tmpfs")
        d.start()
        self.assertEqual(session(d)[0], "+OK 0 0")
        filler = os.path.join(index, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        # Big records need new pages, which the full filesystem refuses.
        for i in range(300):
            d.deliver("bob", "Subject: %d\n\nbody\n" % i, subdir="cur",
                      name="17000%05d.M%dP1.full:2,S" % (i, i))
        for _ in range(4):
            stat, uidl = session(d, "bob")
            self.assertTrue(stat.startswith("+OK 300 "), stat)
            self.assertEqual(len(uidl), 300)
        log = d.log()
        self.assertEqual(log.count("mailbox index: "), 1, log[-3000:])
        self.assertIn("until it works again", log)
        self.assertGreaterEqual(store_errors(d, "index"), 4)
        self.assertEqual(crashes(d), 0)
        os.unlink(filler)
        session(d, "bob")
        d.wait_log("mailbox index works again")


class IndexMapFull(DaemonTest):
    """index_max_mb at its least (1 MB): a mailbox whose record cannot fit is served
    from its maildir at every login, logged once and counted; the others stay indexed."""
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    extra_config = "index_max_mb = 1\n"
    MESSAGES = 20000

    def test_record_too_big_for_the_map_is_scanned_logged_once_and_counted(self):
        d = self.d
        d.deliver("alice", "Subject: a\n\nsmall\n", subdir="cur")
        root = d.maildir("bob")
        st = os.stat(os.path.join(root, "cur"))
        # Links to one file: 20,000 files made in a second, not one file write each.
        with open(os.path.join(root, "message"), "wb") as f:
            f.write(b"Subject: full\n\nbody\n")
        os.chown(os.path.join(root, "message"), st.st_uid, st.st_gid)
        for i in range(self.MESSAGES):
            os.link(os.path.join(root, "message"),
                    os.path.join(root, "cur", "17000%05d.M%dP1.full:2,S" % (i, i)))
        d.start()
        for _ in range(3):
            stat, uidl = session(d, "bob")
            self.assertTrue(stat.startswith("+OK %d " % self.MESSAGES), stat)
            self.assertEqual(len(uidl), self.MESSAGES)
            self.assertTrue(session(d, "alice")[0].startswith("+OK 1 "))
        log = d.log()
        self.assertEqual(log.count("mailbox index full"), 1, log[-3000:])
        self.assertIn("index_max_mb = 1", log)
        # Only the record that does not fit failed: no spell of trouble for the others.
        self.assertNotIn("mailbox index: ", log)
        self.assertNotIn("unusable", log)
        self.assertGreaterEqual(store_errors(d, "index"), 3)
        self.assertEqual(crashes(d), 0)


@unittest.skipUnless(IS_ROOT, "bind-mounts a maildir read-only")
class MaildirReadOnly(DaemonTest):
    workers = 1

    def test_retr_served_and_quit_deletes_nothing(self):
        d = self.d
        names = ["1700000%03d.M%dP1.ro:2," % (i, i) for i in range(3)]
        for i, name in enumerate(names):
            d.deliver("alice", "Subject: %d\n\nbody %d\n" % (i, i), name=name, subdir="cur")
        root = d.maildir("alice")
        before = files(root)
        d.start()
        mount(self, root, "--bind", root)
        subprocess.run(["mount", "-o", "remount,bind,ro", root], check=True, timeout=30)
        p = d.connect()
        self.assertTrue(p.login("alice", "alice-secret").startswith("+OK"))
        # The Seen flag cannot be set: the message is sent all the same.
        self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
        self.assertIn(b"body 0", p.multiline())
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        r = p.cmd("QUIT")
        p.close()
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        self.assertEqual(files(root), before)
        subprocess.run(["umount", root], check=True, timeout=30)
        stat, uidl = session(d)
        self.assertTrue(stat.startswith("+OK 3 "), stat)
        self.assertEqual(crashes(d), 0)


@unittest.skipUnless(IS_ROOT, "mounts a tmpfs")
class MaildirFull(DaemonTest):
    workers = 1

    def test_full_maildir_filesystem_still_serves_and_deletes(self):
        d = self.d
        home = os.path.join(d.mail, "alice")
        shutil.rmtree(home)
        os.makedirs(home)
        mount(self, home, "-t", "tmpfs", "-o", "size=512k", "tmpfs")
        for i in range(3):
            d.deliver("alice", "Subject: %d\n\nbody %d\n" % (i, i), subdir="cur",
                      name="1700000%03d.M%dP1.full:2," % (i, i))
        with open(os.path.join(home, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        d.start()
        p = d.connect()
        self.assertTrue(p.login("alice", "alice-secret").startswith("+OK"))
        self.assertTrue(p.cmd("RETR 2").startswith("+OK"))
        self.assertIn(b"body 1", p.multiline())
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        self.assertEqual(len(d.messages("alice")), 2)
        self.assertTrue(any(n.endswith(":2,S") for n in d.messages("alice")))


@unittest.skipUnless(IS_ROOT and shutil.which("prlimit"), "needs prlimit and runuser")
class OutOfDescriptors(DaemonTest):
    workers = 1

    def test_sessions_are_served_while_the_worker_has_no_descriptor_left(self):
        d = self.d
        for i in range(3):
            d.deliver("alice", "Subject: %d\n\nbody %d\n" % (i, i), subdir="cur",
                      name="1700000%03d.M%dP1.fd:2," % (i, i))
        d.start()
        a = d.connect()
        self.assertTrue(a.login("alice", "alice-secret").startswith("+OK"))
        self.assertTrue(a.cmd("RETR 1").startswith("+OK"))   # cur/ is open from now on
        a.multiline()
        worker = d.workers_pids()[0]
        used = len(os.listdir("/proc/%d/fd" % worker))
        # Room for a few more: then accept(2) fails with EMFILE.
        limit = used + 3
        # As the worker's own user: root here may lack CAP_SYS_RESOURCE (a container).
        subprocess.run(["runuser", "-u", MAIL_USER, "-g", MAIL_GROUP, "--", "prlimit", "--pid",
                        str(worker), "--nofile=%d:%d" % (limit, limit)], check=True, timeout=30)
        extra = []
        try:
            for _ in range(12):
                extra.append(d.connect())
            refused = 0
            for p in extra:
                try:
                    line = p.line()
                except (OSError, EOFError):
                    line = ""
                refused += not line.startswith("+OK")
            self.assertGreater(refused, 0, "the limit was never reached")
            # The logged-in session goes on: a message needs a descriptor of its own,
            # which it gets or answers -ERR for, and the session stays.
            r = a.cmd("RETR 2")
            if r.startswith("+OK"):
                self.assertIn(b"body 1", a.multiline())
            else:
                self.assertTrue(r.startswith("-ERR"), r)
            self.assertTrue(a.cmd("NOOP").startswith("+OK"))
        finally:
            for p in extra:
                p.close()
        # The descriptors are back: the same session and new ones are served.
        wait_until(lambda: len(os.listdir("/proc/%d/fd" % worker)) <= used, 10,
                   what="the extra connections to close")
        self.assertTrue(a.cmd("RETR 3").startswith("+OK"))
        self.assertIn(b"body 2", a.multiline())
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        a.close()
        self.assertEqual(d.workers_pids(), [worker])
        self.assertIn("out of file descriptors", d.log())
        self.assertGreaterEqual(stats(d)["connections_refused"]["descriptors"], 1)


@unittest.skipUnless(IS_ROOT and shutil.which("prlimit"), "needs prlimit and runuser")
class OutOfMemoryForOneSession(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "big": "big-secret"}
    MESSAGES = 200000

    def test_huge_mailbox_gets_sys_temp_and_the_worker_serves_others(self):
        if sanitized():
            self.skipTest("address-space limit under a sanitizer")
        d = self.d
        d.deliver("alice", "Subject: x\n\nbody\n", subdir="cur")
        root = d.maildir("big")
        # On a tmpfs: 200,000 files are made (and gone at the unmount) in seconds.
        mount(self, root, "-t", "tmpfs", "-o", "size=64m,nr_inodes=300000,mode=0700", "tmpfs")
        d.maildir("big")
        uid, gid = os.stat(os.path.join(root, "cur")).st_uid, os.stat(root).st_gid
        cur_fd = os.open(os.path.join(root, "cur"), os.O_RDONLY | os.O_DIRECTORY)
        # Names only, empty files: the listing, not the bytes, is what costs memory.
        try:
            for i in range(self.MESSAGES):
                fd = os.open("1600000000.M%dP1.%s:2,S" % (i, "h" * 40),
                             os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=cur_fd)
                os.fchown(fd, uid, gid)
                os.close(fd)
        finally:
            os.close(cur_fd)
        d.start()
        a = d.connect()
        self.assertTrue(a.login("alice", "alice-secret").startswith("+OK"))
        worker = d.workers_pids()[0]
        with open("/proc/%d/status" % worker) as f:
            vm = [int(l.split()[1]) for l in f if l.startswith("VmSize:")][0] * 1024
        # A few MB more than it has now: 200,000 names need more than that.
        limit = vm + 6 * 1024 * 1024
        subprocess.run(["runuser", "-u", MAIL_USER, "-g", MAIL_GROUP, "--", "prlimit", "--pid",
                        str(worker), "--as=%d:%d" % (limit, limit)], check=True, timeout=30)
        b = d.connect()
        r = b.login("big", "big-secret")
        self.assertTrue(r.startswith("-ERR [SYS/TEMP]"), r)
        b.close()
        # The worker and its other session go on.
        self.assertTrue(a.cmd("STAT").startswith("+OK 1 "))
        self.assertTrue(a.cmd("RETR 1").startswith("+OK"))
        self.assertIn(b"body", a.multiline())
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        a.close()
        self.assertEqual(session(d)[0][:6], "+OK 1 ")
        self.assertEqual(d.workers_pids(), [worker])
        self.assertEqual(crashes(d), 0)
        self.assertIn("user=big: cannot read maildir", d.log())
        self.assertIn("Cannot allocate memory", d.log())


if __name__ == "__main__":
    main()

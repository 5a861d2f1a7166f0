"""Root never follows a path a less privileged user controls: a symlink
planted by the mail user in state_dir/index, or by the auth user in
state_dir/authcache, must not make the master (after a worker's death, at
start) or popctl run as root write or chmod the file it points to; the
pidfile is never a symlink; run_dir, state_dir and the pidfile's directory
that others may write are refused at start with the path and the fix."""
import grp
import os
import pwd
import signal
import stat
import subprocess
import unittest

from fastpop_harness import (AUTH_USER, BIN, IS_ROOT, MAIL_USER, Daemon, DaemonTest,
                             children_of, main, wait_until)


def as_user(name, action):
    """Run action() in a child process that has become user name for good."""
    pw = pwd.getpwnam(name)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([pw.pw_gid])
            os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
            os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "action as %s failed" % name


def plant(directory, name, target):
    """As the directory's owner would: move name aside, put a symlink to target there."""
    def action():
        path = os.path.join(directory, name)
        if os.path.lexists(path):
            os.rename(path, path + ".moved")
        os.symlink(target, path)
    return action


class RootFiles:
    """Root-owned mode-0600 files that nothing may change."""

    def victim(self, name, content):
        path = os.path.join(self.d.dir, name)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o600)
        os.chown(path, 0, 0)
        return path

    @staticmethod
    def snapshot(path):
        st = os.lstat(path)
        with open(path, "rb") as f:
            return (f.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def login_works(self):
        p = self.d.connect()
        try:
            r = p.login("alice", "alice-secret")
            self.assertTrue(r.startswith("+OK"), r + self.d.log()[-2000:])
            p.cmd("QUIT")
        finally:
            p.close()

    def restart(self):
        self.d.stop()
        self.d.log_file.close()
        self.d.start()


@unittest.skipUnless(IS_ROOT, "needs root and the users vmail and fastpop")
class IndexSymlinks(DaemonTest, RootFiles):
    workers = 2

    def index_dir(self):
        return os.path.join(self.d.dir, "state", "index")

    def test_worker_death_does_not_write_through_a_planted_lock_file(self):
        self.d.start()
        self.login_works()
        lock = os.path.join(self.index_dir(), "lock.mdb")
        wait_until(lambda: os.path.exists(lock), what="the index lock file")
        victim = self.victim("victim-lock", b"root's own data\n" * 64)
        before = self.snapshot(victim)
        as_user(MAIL_USER, plant(self.index_dir(), "lock.mdb", victim))
        dead = self.d.workers_pids()[0]
        os.kill(dead, signal.SIGKILL)
        wait_until(lambda: dead not in self.d.workers_pids() and
                   len(self.d.workers_pids()) == self.workers, what="a replacement worker")
        self.d.wait_log("pid %d killed by signal 9" % dead)
        # Every worker serves (a replacement that cannot use the index scans).
        for _ in range(2 * self.workers):
            self.login_works()
        self.assertEqual(self.snapshot(victim), before)

    def test_start_does_not_write_through_planted_env_files(self):
        self.d.start()
        self.login_works()
        lock_victim = self.victim("victim-lock", b"root's lock-sized secret\n" * 64)
        data_victim = self.victim("victim-data", b"")
        before = (self.snapshot(lock_victim), self.snapshot(data_victim))
        self.d.stop()
        self.d.log_file.close()
        as_user(MAIL_USER, plant(self.index_dir(), "lock.mdb", lock_victim))
        as_user(MAIL_USER, plant(self.index_dir(), "data.mdb", data_victim))
        self.d.start()
        self.login_works()
        self.assertEqual((self.snapshot(lock_victim), self.snapshot(data_victim)), before)
        # Files the mail user cannot open are not an index: it started a fresh one.
        self.d.wait_log("started a new one")
        for name in ("lock.mdb", "data.mdb"):
            st = os.lstat(os.path.join(self.index_dir(), name))
            self.assertTrue(stat.S_ISREG(st.st_mode), name)
            self.assertEqual(st.st_uid, pwd.getpwnam(MAIL_USER).pw_uid, name)


@unittest.skipUnless(IS_ROOT, "needs root and the users vmail and fastpop")
class CredcacheSymlinks(DaemonTest, RootFiles):
    def cache_dir(self):
        return os.path.join(self.d.dir, "state", "authcache")

    def test_start_does_not_chmod_through_planted_cache_files(self):
        self.d.start()
        self.login_works()
        data_victim = self.victim("victim-data", b"root's data\n" * 100)
        lock_victim = self.victim("victim-lock", b"root's lock\n" * 100)
        before = (self.snapshot(data_victim), self.snapshot(lock_victim))
        self.d.stop()
        self.d.log_file.close()
        as_user(AUTH_USER, plant(self.cache_dir(), "logins.mdb", data_victim))
        as_user(AUTH_USER, plant(self.cache_dir(), "logins.mdb-lock", lock_victim))
        self.d.start()
        self.login_works()   # the backend answers; the cache is unusable, not the service
        self.assertEqual((self.snapshot(data_victim), self.snapshot(lock_victim)), before)

    def test_popctl_flush_as_root_does_not_write_through_a_planted_lock_file(self):
        self.d.start()
        self.login_works()
        victim = self.victim("victim-lock", b"root's lock\n" * 100)
        before = self.snapshot(victim)
        as_user(AUTH_USER, plant(self.cache_dir(), "logins.mdb-lock", victim))
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "auth", "flush"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(self.snapshot(victim), before, r.stdout + r.stderr)
        # It ran as auth_user, who may not open root's file.
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("Permission denied", r.stderr)


@unittest.skipUnless(IS_ROOT, "needs root and the user vmail")
class UnsafeDirectories(unittest.TestCase):
    """A start that would trust a directory others may write is refused, and says why."""

    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)

    def refused(self, *expect):
        self.d.start(wait=False)
        try:
            rc = self.d.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("fastpopd started:\n" + self.d.log())
        self.assertEqual(rc, 1, self.d.log())
        for text in expect:
            self.assertIn(text, self.d.log())
        self.assertEqual(self.d.workers_pids(), [])

    def test_state_dir_owned_by_the_mail_user(self):
        state = os.path.join(self.d.dir, "state")
        os.mkdir(state, 0o755)
        os.chown(state, pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_USER).gr_gid)
        self.refused("state_dir %s" % state, "owned by uid %d" % pwd.getpwnam(MAIL_USER).pw_uid,
                     "chown root %s" % state)
        self.assertFalse(os.path.exists(os.path.join(state, "authcache")))

    def test_state_dir_writable_by_everyone(self):
        state = os.path.join(self.d.dir, "state")
        os.mkdir(state)
        os.chmod(state, 0o777)
        self.refused("state_dir %s" % state, "mode 0777", "chmod go-w %s" % state)

    def test_run_dir_writable_by_its_group(self):
        os.mkdir(self.d.run_dir)
        os.chmod(self.d.run_dir, 0o775)
        self.refused("run_dir %s" % self.d.run_dir, "mode 0775")

    def test_pidfile_symlink(self):
        os.mkdir(self.d.run_dir, 0o755)
        victim = os.path.join(self.d.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"root's file\n")
        os.chmod(victim, 0o600)
        os.symlink(victim, os.path.join(self.d.run_dir, "fastpopd.pid"))
        self.refused("pidfile %s/fastpopd.pid" % self.d.run_dir, "symbolic link")
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), b"root's file\n")
        self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o600)

    def test_pidfile_in_a_directory_others_may_write(self):
        public = os.path.join(self.d.dir, "public")
        os.mkdir(public)
        os.chmod(public, 0o1777)
        self.d.write_config(self.d.config_text() + "pid_file = %s/fastpopd.pid\n" % public)
        self.refused("%s" % public, "mode 1777")
        self.assertFalse(os.path.exists(os.path.join(public, "fastpopd.pid")))

    def test_unprivileged_start_needs_its_own_directories(self):
        # Started as the mail user, state_dir must be its own and not writable by others.
        user = pwd.getpwnam(MAIL_USER)
        text = self.d.config_text().replace("auth_user = %s\n" % AUTH_USER,
                                            "auth_user = %s\n" % MAIL_USER)
        self.d.write_config(text)
        for base, dirs, files in os.walk(self.d.dir):
            os.chown(base, user.pw_uid, user.pw_gid)
            for name in files:
                os.chown(os.path.join(base, name), user.pw_uid, user.pw_gid)
        state = os.path.join(self.d.dir, "state")
        os.mkdir(state)
        os.chmod(state, 0o757)
        os.chown(state, user.pw_uid, user.pw_gid)
        with open(self.d.log_path, "ab") as log:
            runner = subprocess.Popen(["runuser", "-u", MAIL_USER, "--",
                                       os.path.join(BIN, "fastpopd"), "-F", "-c", self.d.conf],
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            rc = runner.wait(20)
        except subprocess.TimeoutExpired:
            # runuser stays the parent: stop the master it started, by pid.
            for master in children_of(runner.pid):
                os.kill(master, signal.SIGTERM)
            runner.wait(20)
            self.fail("fastpopd started:\n" + self.d.log())
        self.assertEqual(rc, 1, self.d.log())
        self.assertIn("state_dir %s" % state, self.d.log())
        self.assertIn("mode 0757", self.d.log())


if __name__ == "__main__":
    main()

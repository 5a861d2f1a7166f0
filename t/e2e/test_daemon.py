"""The daemon's process model against the real fastpopd on loopback:
process tree, privilege drop, respawn with backoff, reload, stop, config
checking, daemonizing with a pidfile."""
import os
import signal
import subprocess
import time
import unittest

from fastpop_harness import (BIN, IS_ROOT, MAIL_USER, AUTH_USER, Daemon, DaemonTest, Pop3,
                             children_of, proc_status, wait_until, main)
import pwd


class ProcessTree(DaemonTest):
    workers = 2

    def test_master_helper_and_workers(self):
        self.d.start()
        kids = children_of(self.d.pid)
        self.assertEqual(len(kids), 3, "expected 1 helper + 2 workers, got %r" % kids)
        self.assertEqual(len(self.d.workers_pids()), 2)
        self.assertEqual(len(self.d.helper_pids()), 1)
        helper = self.d.helper_pids()[0]
        self.assertTrue(os.readlink("/proc/%d/exe" % helper).endswith("fastpop-auth"))
        # The master logs the descriptor limit it obtained (or fell short of).
        self.assertRegex(self.d.log(), r"open file limit(: \d+| is \d+)")

    @unittest.skipUnless(IS_ROOT, "privilege drop needs root")
    def test_privileges_dropped(self):
        self.d.start()
        mail_uid = pwd.getpwnam(MAIL_USER).pw_uid
        auth_uid = pwd.getpwnam(AUTH_USER).pw_uid
        for pid in self.d.workers_pids():
            st = proc_status(pid)
            self.assertEqual(st["CapEff"], "0000000000000000")
            self.assertEqual(st["CapPrm"], "0000000000000000")
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(st["Uid"].split(), [str(mail_uid)] * 4)
            self.assertEqual(len(st["Groups"].split()), 1, st["Groups"])
        helper = self.d.helper_pids()[0]
        st = proc_status(helper)
        self.assertEqual(st["CapEff"], "0000000000000000")
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Uid"].split(), [str(auth_uid)] * 4)
        # The master keeps root: it binds and forks, never serves.
        self.assertEqual(proc_status(self.d.pid)["Uid"].split()[1], "0")


class Respawn(DaemonTest):
    workers = 2

    def test_killed_worker_is_replaced_and_service_continues(self):
        self.d.start()
        victim = self.d.workers_pids()[0]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            now = self.d.workers_pids()
            return len(now) == 2 and victim not in now
        wait_until(replaced, what="a replacement worker")
        self.assertIn("pid %d killed by signal 9" % victim, self.d.log())
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.close()

    def test_killed_helper_is_replaced(self):
        self.d.start()
        helper = self.d.helper_pids()[0]
        os.kill(helper, signal.SIGKILL)

        def replaced():
            # One snapshot per check: a child just forked, before its exec, looks like
            # a worker for a moment.
            now = self.d.helper_pids()
            return len(now) == 1 and now[0] != helper
        wait_until(replaced, what="a new auth helper")
        self.assertIn("auth[0] pid %d killed by signal 9" % helper, self.d.log())


class CrashLoop(DaemonTest):
    workers = 1

    def test_crash_loop_backs_off(self):
        """A worker that dies on its own (SIGABRT: what a failed assertion or a
        crash looks like) soon after its start is restarted ever later."""
        self.d.start()
        before = self.d.workers_pids()
        for round_ in range(4):
            self.assertEqual(len(before), 1)
            os.kill(before[0], signal.SIGABRT)

            def respawned():
                now = self.d.workers_pids()
                return now if len(now) == 1 and now != before else None
            before = wait_until(respawned, timeout=15, what="respawn %d" % round_)
        log = self.d.log()
        # Each quick death of the same worker doubles the wait: 0.1, 0.2, 0.4 s.
        self.assertIn("respawning in 0.1s", log)
        self.assertIn("respawning in 0.2s", log)
        self.assertIn("respawning in 0.4s", log)
        self.assertIn("respawning in 0.8s", log)

    def test_sigkill_is_not_a_crash_loop(self):
        """SIGKILL comes from outside (the OOM killer, an operator): the worker
        did not fail, so it is back at once however often it happens."""
        self.d.start()
        before = self.d.workers_pids()
        for round_ in range(6):
            os.kill(before[0], signal.SIGKILL)

            def respawned():
                now = self.d.workers_pids()
                return now if len(now) == 1 and now != before else None
            before = wait_until(respawned, timeout=15, what="respawn %d" % round_)
        log = self.d.log()
        self.assertEqual(log.count("killed by signal 9"), 6, log)
        self.assertEqual(log.count("respawning in 0.0s"), 6, log)


class Reload(DaemonTest):
    workers = 2

    def test_good_reload_replaces_workers_and_keeps_sessions(self):
        self.d.start()
        old = set(self.d.workers_pids())
        session = self.d.connect()
        self.assertTrue(session.line().startswith("+OK"))
        self.d.workers = 3
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reloaded")
        wait_until(lambda: len(set(self.d.workers_pids()) - old) == 3,
                   what="three new workers")
        # The session opened before the reload still works on its old worker.
        self.assertEqual(session.cmd("NOOP"), "+OK")
        self.assertTrue(set(self.d.workers_pids()) & old, "old worker must stay for its session")
        self.assertEqual(session.cmd("QUIT"), "+OK Bye")
        session.close()
        # With its last session gone, the old generation retires.
        wait_until(lambda: not (set(self.d.workers_pids()) & old), what="old workers to exit")
        fresh = self.d.connect()
        self.assertTrue(fresh.line().startswith("+OK"))
        fresh.close()

    def test_reload_moves_listeners(self):
        from fastpop_harness import free_port
        self.d.start()
        old_port, new_port = self.d.port, free_port()
        text = self.d.config_text().replace("listen = 127.0.0.1:%d\n" % old_port,
                                            "listen = 127.0.0.1:%d\nlisten = [::1]:%d\n"
                                            % (new_port, new_port))
        self.d.write_config(text)
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reloaded")
        self.assertIn("no longer listening on 127.0.0.1:%d" % old_port, self.d.log())
        for host in ("127.0.0.1", "::1"):
            p = Pop3(new_port, host=host)
            self.assertTrue(p.line().startswith("+OK"))
            p.close()
        # The old address is closed once the old workers have retired.
        def old_refused():
            try:
                Pop3(old_port, timeout=1).close()
                return False
            except OSError:
                return True
        wait_until(old_refused, what="the old listener to close")

    def test_bad_reload_keeps_running_config(self):
        self.d.start()
        old = set(self.d.workers_pids())
        self.d.write_config(self.d.config_text() + "workers = many\n")
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reload failed")
        self.assertRegex(self.d.log(), r"reload failed: .*fastpop\.conf:\d+: workers")
        self.assertEqual(set(self.d.workers_pids()), old)
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.close()


class Stop(DaemonTest):
    def test_sigterm_stops_everything(self):
        self.d.start()
        kids = children_of(self.d.pid)
        self.assertEqual(self.d.stop(), 0)
        for kid in kids:
            self.assertIsNone(proc_status(kid), "child %d outlived the master" % kid)
        self.assertIn("stopped", self.d.log())

    def test_sigterm_closes_idle_sessions_at_once(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        t0 = time.monotonic()
        self.d.signal(signal.SIGTERM)
        self.assertEqual(p.line(), "-ERR [SYS/TEMP] Server is shutting down, try again later")
        self.assertTrue(p.closed_by_server())
        self.assertEqual(self.d.proc.wait(15), 0)
        self.assertLess(time.monotonic() - t0, 4.0, "no need to wait for the deadline")
        self.assertIn("reason=shutdown", self.d.log())

    def test_sigterm_lets_a_busy_session_run_until_the_deadline(self):
        self.d.deliver("alice", b"Subject: big\n\n" + b"x" * 79 + b"\n" * 1 + (b"y" * 99 + b"\n") * 60000)
        self.d.start()
        busy = self.d.connect()
        self.assertTrue(busy.login("alice", "alice-secret").startswith("+OK"))
        # RETR a 6 MB message and do not read it: the session stays busy.
        busy.send("RETR 1\r\n")
        time.sleep(0.5)
        t0 = time.monotonic()
        self.d.signal(signal.SIGTERM)
        # New connections are refused at once...
        wait_until(lambda: self._refused(), what="listener closed")
        # ...the busy session is cut only at shutdown_timeout (5 s here).
        self.assertEqual(self.d.proc.wait(15), 0)
        self.assertGreaterEqual(time.monotonic() - t0, 4.0)
        self.assertIn("shutdown deadline passed", self.d.log())
        # Cut before QUIT: nothing was deleted.
        self.assertEqual(len(self.d.messages("alice")), 1)
        busy.close()

    def _refused(self):
        try:
            c = self.d.connect(timeout=1)
            c.close()
            return False
        except OSError:
            return True


class ConfigCheck(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)

    def run_fastpopd(self, *args):
        return subprocess.run([os.path.join(BIN, "fastpopd")] + list(args),
                              capture_output=True, text=True, timeout=10)

    def test_check_good_config(self):
        r = self.run_fastpopd("-t", "-c", self.d.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stderr)

    def test_check_bad_config_names_file_and_line(self):
        self.d.write_config(self.d.config_text() + "\n# a comment\nmax_connections = 0\n")
        r = self.run_fastpopd("-t", "-c", self.d.conf)
        self.assertEqual(r.returncode, 1)
        lines = self.d.config_text().count("\n") + 3
        self.assertIn("%s:%d: max_connections: 0 is out of range" % (self.d.conf, lines),
                      r.stderr)

    def test_missing_file(self):
        r = self.run_fastpopd("-t", "-c", os.path.join(self.d.dir, "nope.conf"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.conf", r.stderr)

    @unittest.skipUnless(IS_ROOT, "user lookups only matter when started as root")
    def test_unknown_user_names_its_line(self):
        text = self.d.config_text().replace("user = %s\n" % MAIL_USER, "user = nosuchuser\n")
        self.d.write_config(text)
        r = self.run_fastpopd("-t", "-c", self.d.conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn("fastpop.conf:3: user: user \"nosuchuser\" does not exist", r.stderr)

    def test_print_effective_config(self):
        r = self.run_fastpopd("-n", "-c", self.d.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("listen = 127.0.0.1:%d\n" % self.d.port, r.stdout)
        self.assertIn("idle_timeout = 600s\n", r.stdout)  # the RFC 1939 default
        self.assertIn("max_connections_per_ip = 20\n", r.stdout)
        # The printed config is itself a valid config with the same meaning.
        printed = os.path.join(self.d.dir, "printed.conf")
        with open(printed, "w") as f:
            f.write(r.stdout)
        again = self.run_fastpopd("-n", "-c", printed)
        self.assertEqual(again.stdout.split("\n", 1)[1], r.stdout.split("\n", 1)[1])


class Daemonize(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.cleanup)

    def cleanup(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                wait_until(lambda: proc_status(pid) is None, timeout=15, what="daemon exit")
            except ProcessLookupError:
                pass
        self.d.cleanup()

    def pid(self):
        try:
            with open(os.path.join(self.d.run_dir, "fastpopd.pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def start_daemon(self):
        with open(self.d.log_path, "ab") as log:
            return subprocess.run([os.path.join(BIN, "fastpopd"), "-c", self.d.conf],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  timeout=20)

    def popctl_status(self):
        return subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "status"],
                              capture_output=True, text=True, timeout=10)

    def test_daemonizes_with_pidfile(self):
        self.assertEqual(self.popctl_status().returncode, 3)
        # The daemon keeps stderr (log = stderr here): give it a file, not a pipe.
        r = self.start_daemon()
        self.assertEqual(r.returncode, 0, self.d.log())
        pid = self.pid()
        self.assertGreater(pid, 1)
        st = proc_status(pid)
        self.assertIsNotNone(st)
        self.assertEqual(st["PPid"], "1", "a daemon is not the child of its starter")
        # It returned only once serving: a connection works at once.
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.close()
        s = self.popctl_status()
        self.assertEqual(s.returncode, 0)
        self.assertIn("running (pid %d)" % pid, s.stdout)
        # A second instance is refused with the pid of the first.
        r2 = self.start_daemon()
        self.assertEqual(r2.returncode, 1)
        self.assertIn("already running (pid %d" % pid, self.d.log())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: proc_status(pid) is None, timeout=15, what="daemon exit")
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, "fastpopd.pid")))
        self.assertEqual(self.popctl_status().returncode, 3)

    def test_start_failure_is_reported(self):
        # Someone else holds the port: the starter must exit non-zero and say why.
        import socket
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", self.d.port))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        r = self.start_daemon()
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot listen on 127.0.0.1:%d" % self.d.port, self.d.log())


@unittest.skipUnless(IS_ROOT, "needs root to become another user for the test")
class Unprivileged(unittest.TestCase):
    """Started by a normal user: everything runs as that user, nothing to drop."""

    def setUp(self):
        self.user = pwd.getpwnam(MAIL_USER)
        self.d = Daemon()
        self.addCleanup(self.d.cleanup)
        text = self.d.config_text()
        text = text.replace("auth_user = %s\n" % AUTH_USER, "auth_user = %s\n" % MAIL_USER)
        self.d.write_config(text)
        for base, dirs, files in os.walk(self.d.dir):
            os.chown(base, self.user.pw_uid, self.user.pw_gid)
            for name in files:
                os.chown(os.path.join(base, name), self.user.pw_uid, self.user.pw_gid)

    def test_runs_as_the_starting_user(self):
        self.d.log_file = open(self.d.log_path, "ab")
        self.d.proc = subprocess.Popen(
            ["runuser", "-u", MAIL_USER, "--", os.path.join(BIN, "fastpopd"), "-F",
             "-c", self.d.conf],
            stdin=subprocess.DEVNULL, stdout=self.d.log_file, stderr=self.d.log_file)
        # runuser stays the parent: the master is its only child.
        master = wait_until(lambda: (children_of(self.d.proc.pid) or [None])[0],
                            what="the master under runuser")
        wait_until(lambda: len(children_of(master)) == 3, what="helper and workers")
        for pid in [master] + children_of(master):
            st = proc_status(pid)
            self.assertEqual(st["Uid"].split(), [str(self.user.pw_uid)] * 4)
            self.assertEqual(st["CapEff"], "0000000000000000")
        p = self.d.connect()
        self.assertTrue(p.login("alice", "alice-secret").startswith("+OK"), self.d.log())
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()
        os.kill(master, signal.SIGTERM)
        self.assertEqual(self.d.proc.wait(15), 0)


if __name__ == "__main__":
    main()

"""popctl drain lets logged-in sessions finish (issue 15): a client that
downloads and DELEs with pauses across a drain sees its QUIT succeed and its
messages gone; sessions not logged in are closed at once; a logged-in session
idle longer than drain_idle_timeout is told -ERR [SYS/TEMP] and closed; the
deadline cuts what is left; undrain ends the drain; popctl drain shows the
sessions left on a terminal and returns when they are gone. The stats count
drain-idle and drain-deadline ends apart."""
import json
import os
import pty
import select
import subprocess
import ssl
import time

from fastpop_harness import BIN, DaemonTest, main, wait_until
from tls_fixture import TlsTest, client_context, login, tls_connect

# Shorter than any drain idle limit below, so a pausing client is never "idle".
PAUSE = 0.4


class DrainBase(DaemonTest):
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def setUp(self):
        super().setUp()
        self.d.start()
        self.sock = os.path.join(self.d.run_dir, "control.sock")

    def popctl_cmd(self, *args):
        return [os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", self.sock] + list(args)

    def popctl(self, *args, timeout=60):
        return subprocess.run(self.popctl_cmd(*args), capture_output=True, text=True,
                              timeout=timeout)

    def popctl_background(self, *args):
        p = subprocess.Popen(self.popctl_cmd(*args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p

    def logged_in(self, user="alice"):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.login(user, self.d.users[user]).startswith("+OK"))
        return p

    def drain_status(self):
        r = self.popctl("--json", "drain-status")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)["rows"][0]

    def wait_draining(self):
        """Until the workers refuse new clients: the drain has reached them."""
        def refused():
            p = self.d.connect()
            try:
                return p.line().startswith("-ERR [SYS/TEMP]")
            finally:
                p.close()
        wait_until(refused, 10, what="new connections refused")

    def ended(self, reason):
        r = self.popctl("--json", "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["sessions_ended"].get(reason, 0)


class DrainLetsSessionsFinish(DrainBase):
    """Default drain_idle_timeout (10 s): pauses of PAUSE s are far inside it."""

    def test_download_and_dele_across_a_drain(self):
        for i in range(3):
            self.d.deliver("alice", "Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
        p = self.logged_in()
        self.assertTrue(p.cmd("STAT").startswith("+OK 3 "))
        drain = self.popctl_background("drain", "--deadline", "60", "--message", "Maint")
        self.wait_draining()
        for i in range(1, 4):
            time.sleep(PAUSE)
            self.assertTrue(p.cmd("RETR %d" % i).startswith("+OK"))
            self.assertIn(b"body %d" % (i - 1), p.multiline())
            time.sleep(PAUSE)
            self.assertEqual(p.cmd("DELE %d" % i)[:3], "+OK")
        time.sleep(PAUSE)
        self.assertIsNone(drain.poll(), "popctl drain waits while the session is served")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        self.assertTrue(p.closed_by_server())
        self.assertEqual(self.d.messages("alice"), [])
        out, err = drain.communicate(timeout=30)
        self.assertEqual(drain.returncode, 0, out + err)
        self.assertIn("drained: no sessions left", out)
        self.assertEqual(self.ended("quit"), 1)

    def test_not_logged_in_closed_at_once(self):
        self.d.deliver("alice", "Subject: keep\r\n\r\nbody\r\n")
        greeted = self.d.connect()
        self.addCleanup(greeted.close)
        self.assertTrue(greeted.line().startswith("+OK"))
        half = self.d.connect()
        self.addCleanup(half.close)
        self.assertTrue(half.line().startswith("+OK"))
        self.assertTrue(half.cmd("USER alice").startswith("+OK"))
        sasl = self.d.connect()
        self.addCleanup(sasl.close)
        self.assertTrue(sasl.line().startswith("+OK"))
        self.assertEqual(sasl.cmd("AUTH PLAIN"), "+ ")
        user = self.logged_in()
        started = time.monotonic()
        r = self.popctl("drain", "--no-wait", "--message", "Back soon")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for p in (greeted, half, sasl):
            self.assertEqual(p.line(), "-ERR [SYS/TEMP] Back soon")
            self.assertTrue(p.closed_by_server())
        # At once: long before the drain idle limit of 10 s.
        self.assertLess(time.monotonic() - started, 8.0)
        self.assertEqual(self.drain_status()["sessions"], "1")
        self.assertEqual(self.ended("drain"), 3)
        self.assertTrue(user.cmd("NOOP").startswith("+OK"))
        self.assertTrue(user.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(user.cmd("QUIT").startswith("+OK"))
        self.assertEqual(self.d.messages("alice"), [])
        wait_until(lambda: self.drain_status()["sessions"] == "0", 10, what="no sessions")


class DrainIdleLimit(DrainBase):
    extra_config = "drain_idle_timeout = 1s\n"

    def test_idle_session_closed_after_the_limit(self):
        self.d.deliver("alice", "Subject: keep\r\n\r\nbody\r\n")
        idle = self.logged_in()
        self.assertTrue(idle.cmd("DELE 1").startswith("+OK"))
        busy = self.logged_in("bob")
        drain = self.popctl_background("drain", "--deadline", "60", "--message", "Maint")
        self.wait_draining()
        # bob keeps talking, more often than the limit: served throughout.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            self.assertTrue(busy.cmd("NOOP").startswith("+OK"))
            time.sleep(0.25)
        # alice has said nothing since her DELE: told and closed, nothing deleted.
        self.assertEqual(idle.line(), "-ERR [SYS/TEMP] Maint")
        self.assertTrue(idle.closed_by_server())
        self.assertEqual(len(self.d.messages("alice")), 1)
        self.assertIsNone(drain.poll())
        time.sleep(0.2)
        self.assertTrue(busy.cmd("QUIT").startswith("+OK"))
        out, err = drain.communicate(timeout=30)
        self.assertEqual(drain.returncode, 0, out + err)
        self.assertEqual(self.ended("drain-idle"), 1)
        self.assertEqual(self.ended("drain-deadline"), 0)
        self.assertIn("user=alice ip=127.0.0.1", self.d.log())
        self.assertRegex(self.d.log(), r"session user=alice .*reason=drain-idle")

    def test_undrain_stops_the_drain(self):
        idle = self.logged_in()
        drain = self.popctl_background("drain", "--deadline", "60")
        self.wait_draining()
        r = self.popctl("undrain")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out, err = drain.communicate(timeout=30)
        self.assertEqual(drain.returncode, 1, out + err)
        self.assertIn("undrain", err)
        self.assertEqual(self.drain_status()["draining"], "no")
        # Idle for longer than the drain's limit: undrained, only idle_timeout counts.
        time.sleep(2.5)
        self.assertTrue(idle.cmd("NOOP").startswith("+OK"))
        fresh = self.d.connect()
        self.addCleanup(fresh.close)
        self.assertTrue(fresh.line().startswith("+OK"))
        self.assertEqual(self.ended("drain-idle"), 0)


class DrainOverTls(TlsTest):
    """The drain's -ERR goes through TLS too, then the close_notify."""
    tls_extra = "drain_idle_timeout = 1s\n"

    def test_tls_sessions_told_inside_tls(self):
        ctx = client_context(self.ca)
        sessions = []
        for logged_in in (False, True):
            p = tls_connect(self.port(), ctx)
            self.addCleanup(p.close)
            self.assertTrue(p.line().startswith("+OK"))
            if logged_in:
                login(p)
            sessions.append(p)
        sock = os.path.join(self.d.run_dir, "control.sock")
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", sock,
                            "drain", "--no-wait", "--message", "Maint"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for p in sessions:
            self.assertEqual(p.line(), "-ERR [SYS/TEMP] Maint")
            p.sock.settimeout(10)
            try:
                p.sock = p.sock.unwrap()   # returns once the server's close_notify came
            except (ssl.SSLError, OSError) as e:
                self.fail("no close_notify after the drain's -ERR: %r" % e)
        log = self.d.log()
        self.assertRegex(log, r"session user=alice .*reason=drain-idle .*tls=TLSv1\.[23]")
        self.assertRegex(log, r"session user=- .*reason=drain .*tls=TLSv1\.[23]")


class DrainDeadline(DrainBase):
    extra_config = "drain_idle_timeout = 60s\n"

    def test_deadline_cuts_what_is_left(self):
        self.d.deliver("alice", "Subject: keep\r\n\r\nbody\r\n")
        held = self.logged_in()
        self.assertTrue(held.cmd("DELE 1").startswith("+OK"))
        r = self.popctl("drain", "--deadline", "2", "--message", "Maint")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("1 session(s) cut at the deadline", r.stdout)
        # Between commands when cut: told why, and nothing deleted.
        self.assertEqual(held.line(), "-ERR [SYS/TEMP] Maint")
        self.assertTrue(held.closed_by_server())
        self.assertEqual(len(self.d.messages("alice")), 1)
        self.assertEqual(self.ended("drain-deadline"), 1)
        self.assertEqual(self.ended("drain-idle"), 0)
        self.assertRegex(self.d.log(), r"session user=alice .*reason=drain-deadline")
        status = self.drain_status()
        self.assertEqual((status["draining"], status["sessions"], status["cut"]),
                         ("yes", "0", "1"))


class DrainProgress(DrainBase):
    def read_pty(self, fd, until, timeout=30.0):
        """What popctl wrote to its terminal, until the text `until` appears or EOF."""
        seen = b""
        end = time.monotonic() + timeout
        while until.encode() not in seen and time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:      # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
        return seen.decode(errors="replace")

    def test_progress_on_a_terminal(self):
        a = self.logged_in()
        b = self.logged_in("bob")
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        drain = subprocess.Popen(self.popctl_cmd("drain", "--deadline", "60"),
                                 stdout=slave, stderr=slave)
        self.addCleanup(lambda: drain.poll() is None and drain.kill())
        os.close(slave)
        shown = self.read_pty(master, "2 session(s) left")
        self.assertIn("2 session(s) left", shown)
        self.assertRegex(shown, r"deadline in \d+s")
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        shown = self.read_pty(master, "1 session(s) left")
        self.assertIn("1 session(s) left", shown)
        self.assertTrue(b.cmd("QUIT").startswith("+OK"))
        shown = self.read_pty(master, "no sessions left")
        self.assertIn("drained: no sessions left", shown)
        self.assertEqual(drain.wait(30), 0)

    def test_no_progress_when_not_a_terminal(self):
        a = self.logged_in()
        drain = self.popctl_background("drain", "--deadline", "60")
        self.wait_draining()
        time.sleep(0.5)
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        out, err = drain.communicate(timeout=30)
        self.assertEqual(drain.returncode, 0, out + err)
        # One line for a script's log, no carriage returns.
        self.assertEqual(out, "drained: no sessions left\n")
        self.assertEqual(err, "")

    def test_drain_status_shows_sessions_left(self):
        a = self.logged_in()
        r = self.popctl("drain", "--no-wait")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.popctl("drain-status")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"draining: yes")
        self.assertRegex(r.stdout, r"sessions: 1 \(1 logged in\)")
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        wait_until(lambda: self.drain_status()["sessions"] == "0", 10, what="no sessions")


if __name__ == "__main__":
    main()

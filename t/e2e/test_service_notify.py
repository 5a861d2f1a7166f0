"""systemd Type=notify without systemd (issue 16): the test binds the datagram
socket a service manager would, passes it in NOTIFY_SOCKET, and reads what
fastpopd says: READY=1 only once the listeners accept, RELOADING=1 then
READY=1 around a SIGHUP reload (and a failed one), STATUS lines for popctl
drain and undrain, STOPPING=1 at SIGTERM. The auth helper, which the
master execs, does not inherit the variable."""
import os
import select
import signal
import socket
import subprocess

from fastpop_harness import BIN, DaemonTest, Pop3, main, wait_until


class ServiceNotifyTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.d.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.path)
        self.addCleanup(self.notify.close)

    def start_notified(self, name):
        os.environ["NOTIFY_SOCKET"] = name
        try:
            self.d.start(wait=False)
        finally:
            del os.environ["NOTIFY_SOCKET"]

    def message(self, sock=None, timeout=15.0):
        """The next datagram as a dict of its variables."""
        sock = sock or self.notify
        ready, _, _ = select.select([sock], [], [], timeout)
        self.assertTrue(ready, "no notify message within %.0fs:\n%s" % (timeout, self.d.log()))
        data = sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def popctl(self, *args):
        sock = os.path.join(self.d.run_dir, "control.sock")
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", sock] +
                           list(args), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_ready_reload_drain_stop(self):
        self.start_notified(self.path)
        msg = self.message()
        self.assertEqual(msg.get("READY"), "1")
        self.assertEqual(msg.get("STATUS"), "serving")
        # READY=1 means serving: a client connecting right now is greeted.
        p = Pop3(self.d.port, timeout=5)
        self.assertTrue(p.line().startswith("+OK"))
        p.close()
        self.d.wait_ready()

        helper = self.d.helper_pids()[0]
        with open("/proc/%d/environ" % helper, "rb") as f:
            self.assertNotIn(b"NOTIFY_SOCKET=", f.read())

        self.d.signal(signal.SIGHUP)
        msg = self.message()
        self.assertEqual(msg.get("RELOADING"), "1")
        self.assertGreater(int(msg["MONOTONIC_USEC"]), 0)
        msg = self.message()
        self.assertEqual(msg.get("READY"), "1")
        self.assertEqual(msg.get("STATUS"), "serving; reloaded")

        # A file that no longer parses: the running one stays, and systemd hears so.
        self.d.write_config(self.d.config_text() + "no_such_setting = 1\n")
        self.d.signal(signal.SIGHUP)
        self.assertEqual(self.message().get("RELOADING"), "1")
        msg = self.message()
        self.assertEqual(msg.get("READY"), "1")
        self.assertIn("reload failed", msg.get("STATUS", ""))
        self.assertIn("no_such_setting", msg.get("STATUS", ""))
        self.d.write_config()

        self.popctl("drain", "--no-wait")
        self.assertEqual(self.message().get("STATUS"), "draining: new connections refused")
        # A reload while draining: the drain goes on, and the status says so.
        self.d.signal(signal.SIGHUP)
        self.assertEqual(self.message().get("RELOADING"), "1")
        self.assertEqual(self.message().get("STATUS"), "draining; reloaded")
        self.popctl("undrain")
        self.assertEqual(self.message().get("STATUS"), "serving")

        self.d.signal(signal.SIGTERM)
        msg = self.message()
        self.assertEqual(msg.get("STOPPING"), "1")
        self.assertEqual(self.d.proc.wait(20), 0)

    def test_abstract_socket_name(self):
        name = "fastpop-e2e-notify-%d" % os.getpid()
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        abstract.bind("\0" + name)
        self.addCleanup(abstract.close)
        self.start_notified("@" + name)
        self.assertEqual(self.message(abstract).get("READY"), "1")
        self.d.wait_ready()

    def test_no_ready_when_start_fails(self):
        # The port is taken: the master exits with its reason, never READY=1.
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", self.d.port))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        self.start_notified(self.path)
        self.assertEqual(self.d.proc.wait(20), 1)
        ready, _, _ = select.select([self.notify], [], [], 0.5)
        self.assertFalse(ready, "a failed start must not say READY=1")


if __name__ == "__main__":
    main()

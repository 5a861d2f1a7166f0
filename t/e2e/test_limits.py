"""Every limit has a default and a test: connections per IP and in total
(across workers), idle timeout, command line length, bad commands."""
import socket
import time

from fastpop_harness import DaemonTest, Pop3, main, wait_until


class PerIpLimit(DaemonTest):
    workers = 2
    extra_config = "max_connections_per_ip = 3\n"

    def test_fourth_connection_from_one_ip_is_refused(self):
        self.d.start()
        held = [self.d.connect() for _ in range(3)]
        for p in held:
            self.assertTrue(p.line().startswith("+OK"))
        extra = self.d.connect()
        self.assertEqual(extra.line(),
                         "-ERR [SYS/TEMP] Too many connections from your address, try again later")
        self.assertTrue(extra.closed_by_server())
        self.d.wait_log("reason=refused limit=max_connections_per_ip max=3")
        # Another address is not affected by this one's count.
        other = Pop3(self.d.port, source=("127.0.0.2", 0))
        self.assertTrue(other.line().startswith("+OK"))
        # Closing one frees its place, whichever worker held it.
        self.assertEqual(held[0].cmd("QUIT"), "+OK Bye")
        held[0].close()

        def accepted():
            p = self.d.connect()
            ok = p.line().startswith("+OK")
            p.close()
            return ok
        wait_until(accepted, what="a freed slot")
        for p in held[1:] + [other]:
            p.close()


class TotalLimit(DaemonTest):
    workers = 2
    extra_config = "max_connections = 4\n"
    # Logged in: a connection that has not logged in would make room instead
    # (test_conn_exhaustion.py).
    users = {"u%d" % i: "pw%d" % i for i in range(4)}

    def test_fifth_connection_is_refused(self):
        self.d.start()
        held = []
        for i in range(4):
            p = Pop3(self.d.port, source=("127.0.0.%d" % (10 + i), 0))
            self.assertTrue(p.login("u%d" % i, "pw%d" % i).startswith("+OK Logged in"))
            held.append(p)
        extra = Pop3(self.d.port, source=("127.0.0.20", 0))
        self.assertEqual(extra.line(), "-ERR [SYS/TEMP] Server busy, try again later")
        self.d.wait_log("reason=refused limit=max_connections max=4")
        for p in held:
            p.close()


class SlotsOfKilledWorker(DaemonTest):
    workers = 1
    extra_config = "max_connections_per_ip = 2\n"

    def test_slots_released_when_worker_dies(self):
        import os, signal
        self.d.start()
        held = [self.d.connect() for _ in range(2)]
        for p in held:
            self.assertTrue(p.line().startswith("+OK"))
        os.kill(self.d.workers_pids()[0], signal.SIGKILL)
        self.d.wait_log("connection slots; released")
        wait_until(lambda: len(self.d.workers_pids()) == 1, what="respawn")

        def accepted():
            try:
                p = self.d.connect(timeout=2)
                ok = p.line().startswith("+OK")
                p.close()
                return ok
            except (OSError, EOFError):
                return False
        wait_until(accepted, what="service with the dead worker's slots free")
        for p in held:
            p.close()


class IdleTimeout(DaemonTest):
    extra_config = "idle_timeout = 5s\n"

    def test_idle_session_is_closed(self):
        self.d.start()
        p = self.d.connect(timeout=20)
        self.assertTrue(p.line().startswith("+OK"))
        busy = self.d.connect(timeout=20)
        self.assertTrue(busy.line().startswith("+OK"))
        t0 = time.monotonic()
        # Activity keeps a session alive past the timeout.
        for _ in range(4):
            time.sleep(2)
            self.assertEqual(busy.cmd("NOOP"), "+OK")
        self.assertEqual(p.line(), "-ERR Disconnected for inactivity")
        self.assertTrue(p.closed_by_server())
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 4.5)
        self.assertLess(waited, 12)
        self.d.wait_log("reason=idle-timeout")
        self.assertEqual(busy.cmd("NOOP"), "+OK")
        busy.close()


class CommandLimits(DaemonTest):
    extra_config = "max_bad_commands = 4\n"

    def test_long_line_nul_and_unknown_commands(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        # 255 octets is the RFC 2449 limit: 256 is refused, 255 is parsed.
        self.assertEqual(p.cmd("NOOP " + "x" * 250), "+OK")
        self.assertEqual(p.cmd("X" * 256), "-ERR Command line too long (at most 255 octets)")
        # An over-long line arriving in pieces is refused too, once.
        p.send("Y" * 200)
        p.send("Y" * 200)
        p.send("Y" * 200 + "\r\n")
        self.assertEqual(p.line(), "-ERR Command line too long (at most 255 octets)")
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertEqual(p.cmd("HELO\0THERE"), "-ERR NUL byte in command")
        self.assertEqual(p.cmd("FROB"), "-ERR Unknown command")
        self.assertEqual(p.line(), "-ERR Too many bad commands, closing connection")
        self.assertTrue(p.closed_by_server())
        self.d.wait_log("reason=too-many-errors")

    def test_case_insensitive_and_bare_lf(self):
        self.d.start()
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.send("noop\n")
        self.assertEqual(p.line(), "+OK")
        p.send("CaPa\n")
        self.assertEqual(p.line(), "+OK Capability list follows")
        caps = p.multiline().decode().split("\r\n")
        self.assertIn("USER", caps)
        p.close()


class DescriptorBudget(DaemonTest):
    """Under a low open-file limit, connections spread over the workers, and
    once every worker is at its share the next ones are told, not left
    hanging in the listen queue."""
    workers = 2
    extra_config = "max_connections_per_ip = 1000\n"

    def test_connections_spread_then_refused_clearly(self):
        import os, subprocess
        from fastpop_harness import BIN
        self.d.log_file = open(self.d.log_path, "ab")
        self.d.proc = subprocess.Popen(
            ["prlimit", "--nofile=200:200", "--", os.path.join(BIN, "fastpopd"), "-F",
             "-c", self.d.conf],
            stdin=subprocess.DEVNULL, stdout=self.d.log_file, stderr=self.d.log_file)
        self.d.wait_ready()
        self.assertIn("open file limit is 200", self.d.log())
        held = []
        # 200 descriptors: 136 usable, a quarter kept for open messages = 102 per worker.
        for i in range(150):
            p = self.d.connect()
            self.assertTrue(p.line().startswith("+OK"), "connection %d" % i)
            held.append(p)
        busy = 0
        for i in range(80):
            p = self.d.connect(timeout=5)
            line = p.line()
            if line == "-ERR [SYS/TEMP] Server busy, try again later":
                busy += 1
            else:
                self.assertTrue(line.startswith("+OK"), line)
            held.append(p)
        self.assertGreater(busy, 0, "past 2 x 102 connections someone must be refused")
        self.assertIn("limit=open-files max=102", self.d.log())
        self.assertNotIn("out of file descriptors", self.d.log())
        for p in held:
            p.close()


if __name__ == "__main__":
    main()

"""The root master and a scoreboard a worker scribbles on (issue 12 item 3).

Every worker (mail uid) can write every byte of the scoreboard's shared
region. Here the test does what a compromised worker could: through the
worker's own mapping (/proc/<worker>/mem, as root) it takes the workers'
lock forever, or overwrites the region with garbage (capacity, counts,
indices, strings without a NUL). The master must go on answering popctl
status/who/kick/stats at once, reap a dead worker without crashing, and stop
on SIGTERM."""
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from fastpop_harness import BIN, IS_ROOT, DaemonTest, main, wait_until

CAPACITY = 40             # max_connections: the number of slots
MUTEX_BYTES = 40          # sizeof(pthread_mutex_t) on Linux x86-64/aarch64: first in the region


def scoreboard_region(pid):
    """(start, end) of the scoreboard: the worker's MAP_SHARED anonymous mapping."""
    found = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "rw-s" and parts[5] == "/dev/zero":
                a, b = (int(x, 16) for x in parts[0].split("-"))
                found.append((a, b))
    assert len(found) == 1, "expected one shared anonymous mapping, found %r" % found
    return found[0]


def poke(pid, addr, data):
    """Write into the worker's memory; the mapping is shared, so into everyone's."""
    with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
        mem.seek(addr)
        mem.write(data)


@unittest.skipUnless(IS_ROOT, "writes into a worker's memory through /proc/<pid>/mem")
class UntrustedScoreboard(DaemonTest):
    extra_config = "max_connections = %d\n" % CAPACITY

    def setUp(self):
        super().setUp()
        self.d.start()
        self.sock = os.path.join(self.d.run_dir, "control.sock")
        # One logged-in session, so the table is not empty before the damage.
        self.p = self.d.connect()
        self.assertTrue(self.p.login("alice", "alice-secret").startswith("+OK"))
        self.addCleanup(self.p.close)
        self.worker = self.d.workers_pids()[0]
        self.start, self.end = scoreboard_region(self.worker)

    def popctl(self, *args):
        cmd = [os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", self.sock] + list(args)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("popctl %s got no answer within 10s" % " ".join(args))

    def assert_master_answers(self):
        r = self.popctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.popctl("--json", "who")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)["rows"]
        self.assertLessEqual(len(rows), CAPACITY)
        for row in rows:
            self.assertLessEqual(len(row["user"]), 127)  # SCOREBOARD_USER_MAX - 1
        r = self.popctl("kick", "nobody-at-all")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.popctl("stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        return rows

    def assert_stops_on_sigterm(self):
        # Workers stuck on the lock ignore SIGTERM; the master kills them at the deadline.
        t = time.monotonic()
        self.d.proc.send_signal(signal.SIGTERM)
        try:
            self.d.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("the master did not stop on SIGTERM within 20s")
        self.assertLess(time.monotonic() - t, 20)
        self.assertIn("stopped", self.d.log())

    def test_lock_held_forever_by_a_worker(self):
        # The futex word of the workers' robust mutex: the owner's thread id.
        poke(self.worker, self.start, self.worker.to_bytes(4, "little"))
        # New connections now hang in whichever worker takes them (on the lock).
        stuck = [socket.create_connection(("127.0.0.1", self.d.port), timeout=5) for _ in range(4)]
        for s in stuck:
            self.addCleanup(s.close)
        rows = self.assert_master_answers()
        self.assertEqual([r["user"] for r in rows], ["alice"])
        # A worker dying is reaped without the lock, and the master answers on.
        other = self.d.workers_pids()[1]
        os.kill(other, signal.SIGKILL)
        self.d.wait_log("pid %d killed by signal 9" % other)
        self.assert_master_answers()
        self.assert_stops_on_sigterm()

    def test_region_filled_with_text(self):
        # Every owner a "live" pid 0x41414141, strings without a NUL, counts and
        # indices 0x41414141; the mutex left working.
        poke(self.worker, self.start + MUTEX_BYTES,
             b"A" * (self.end - self.start - MUTEX_BYTES))
        rows = self.assert_master_answers()
        self.assertEqual(len(rows), CAPACITY)
        self.assertEqual(rows[0]["user"], "A" * 127)  # cut at SCOREBOARD_USER_MAX - 1
        os.kill(self.worker, signal.SIGKILL)
        self.d.wait_log("pid %d killed by signal 9" % self.worker)
        self.assert_master_answers()
        self.assert_stops_on_sigterm()

    def test_region_filled_with_ones(self):
        # capacity/buckets/indices 0xffffffff, pointers all ones, the mutex garbage.
        poke(self.worker, self.start, b"\xff" * (self.end - self.start))
        self.assert_master_answers()
        os.kill(self.worker, signal.SIGKILL)
        self.d.wait_log("pid %d killed by signal 9" % self.worker)
        self.assert_master_answers()
        self.assert_stops_on_sigterm()


if __name__ == "__main__":
    main()

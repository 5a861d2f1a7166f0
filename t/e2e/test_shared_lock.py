"""mailbox_lock = shared: two fastpopd instances ("hosts", with their own
state directories) serve one maildir tree, as hosts sharing maildirs over NFS
do. A mailbox open on one is [IN-USE] on the other; the holder's heartbeat
keeps the lock past its stale time; a crashed holder's lock is taken over (at
once on the same host name, after mailbox_lock_stale from another); a session
whose lock was taken over while it hung deletes nothing at QUIT; bad settings
are refused with file:line."""
import os
import signal
import subprocess
import time
import unittest

from fastpop_harness import BIN, Daemon, main, wait_until

STALE = 3   # mailbox_lock_stale in seconds (the smallest accepted)


def shared_config(host):
    return ("mailbox_lock = shared\nmailbox_lock_stale = %ds\nhost_name = %s\n"
            "idle_timeout = 60s\n" % (STALE, host))


class SharedLockTest(unittest.TestCase):
    def start_pair(self, host_a="hosta", host_b="hostb"):
        self.a = Daemon(workers=1, extra_config=shared_config(host_a))
        self.addCleanup(self.a.cleanup)
        self.b = Daemon(workers=1, extra_config=shared_config(host_b))
        self.addCleanup(self.b.cleanup)
        # Host B serves host A's users and maildirs.
        self.b.passwd = self.a.passwd
        self.b.mail = self.a.mail
        self.b.write_config()
        self.a.start()
        self.b.start()
        self.lock = os.path.join(self.a.maildir("alice"), "fastpop.lock")
        for i in range(3):
            self.a.deliver("alice", "Subject: %d\r\n\r\nbody %d\r\n" % (i, i))

    def login(self, d):
        p = d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        return p, p.cmd("PASS " + self.a.users["alice"])

    def lock_text(self):
        with open(self.lock) as f:
            return f.read()

    def test_in_use_across_hosts_and_heartbeat(self):
        self.start_pair()
        pa, reply = self.login(self.a)
        self.assertTrue(reply.startswith("+OK"), reply)
        self.assertIn("host=hosta ", self.lock_text())
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        pb.close()
        # Idle past twice the stale time: the heartbeat keeps the lock young.
        deadline = time.monotonic() + 2 * STALE + 1
        while time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertTrue(time.time() - os.stat(self.lock).st_mtime < STALE)
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        pb.close()
        self.assertIn("in use by hosta", self.b.log())
        # QUIT frees it; B serves the mailbox at once, and the lock is B's.
        self.assertTrue(pa.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(pa.cmd("QUIT").startswith("+OK"))
        pa.close()
        self.assertFalse(os.path.exists(self.lock))
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("+OK"), reply)
        self.assertIn("host=hostb ", self.lock_text())
        self.assertTrue(pb.cmd("STAT").startswith("+OK 2 "))
        self.assertTrue(pb.cmd("QUIT").startswith("+OK"))
        pb.close()
        self.assertFalse(os.path.exists(self.lock))
        leftovers = [n for n in os.listdir(os.path.dirname(self.lock))
                     if n not in ("cur", "new", "tmp")]
        self.assertEqual(leftovers, [])

    def test_crashed_host_lock_expires(self):
        self.start_pair()
        pa, reply = self.login(self.a)
        self.assertTrue(reply.startswith("+OK"), reply)
        # Host A dies at once, worker and all; its lock file stays behind.
        for pid in self.a.workers_pids() + [self.a.pid]:
            os.kill(pid, signal.SIGKILL)
        self.a.proc.wait(10)
        pa.close()
        self.assertTrue(os.path.exists(self.lock))
        killed_at = time.monotonic()
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        pb.close()
        taken = []

        def b_gets_it():
            p, r = self.login(self.b)
            if r.startswith("+OK"):
                taken.append(p)
                return True
            p.close()
            return False
        wait_until(b_gets_it, timeout=STALE + 10, interval=0.5,
                   what="host B taking over a crashed host's lock")
        self.assertGreaterEqual(time.monotonic() - killed_at, STALE - 1)
        p = taken[0]
        self.assertTrue(p.cmd("STAT").startswith("+OK 3 "))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()

    def test_dead_holder_on_the_same_host_is_taken_over_at_once(self):
        # Two instances calling themselves one host: a dead pid is proof enough.
        self.start_pair("samehost", "samehost")
        pa, reply = self.login(self.a)
        self.assertTrue(reply.startswith("+OK"), reply)
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        pb.close()
        worker = self.a.workers_pids()[0]
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not os.path.exists("/proc/%d" % worker), timeout=10,
                   what="the worker gone")
        pa.close()
        pb, reply = self.login(self.b)
        self.assertTrue(reply.startswith("+OK"), reply)
        self.assertTrue(pb.cmd("QUIT").startswith("+OK"))
        pb.close()

    def test_a_session_that_lost_its_lock_deletes_nothing(self):
        self.start_pair()
        pa, reply = self.login(self.a)
        self.assertTrue(reply.startswith("+OK"), reply)
        self.assertTrue(pa.cmd("DELE 2").startswith("+OK"))
        # Host A hangs (a stopped VM) past the stale time; B takes the mailbox.
        worker = self.a.workers_pids()[0]
        os.kill(worker, signal.SIGSTOP)
        try:
            taken = []

            def b_gets_it():
                p, r = self.login(self.b)
                if r.startswith("+OK"):
                    taken.append(p)
                    return True
                p.close()
                return False
            wait_until(b_gets_it, timeout=STALE + 10, interval=0.5,
                       what="host B taking over a hung host's lock")
        finally:
            os.kill(worker, signal.SIGCONT)
        pb = taken[0]
        before = self.a.messages("alice")
        self.assertEqual(len(before), 3)
        # A wakes up: its QUIT must not delete what it marked.
        reply = pa.cmd("QUIT")
        self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
        pa.close()
        self.assertEqual(self.a.messages("alice"), before)
        self.assertIn("host=hostb ", self.lock_text())
        # B's session is unharmed and its own DELE does apply.
        self.assertTrue(pb.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(pb.cmd("QUIT").startswith("+OK"))
        pb.close()
        self.assertEqual(len(self.a.messages("alice")), 2)
        self.assertFalse(os.path.exists(self.lock))


class SettingsTest(unittest.TestCase):
    def check(self, extra, want):
        d = Daemon(workers=1, extra_config=extra)
        self.addCleanup(d.cleanup)
        r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", d.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stderr, want)

    def test_bad_settings(self):
        self.check("mailbox_lock = nfs\n",
                   r"fastpop\.conf:\d+: mailbox_lock: \"nfs\" is not one of local, shared")
        self.check("mailbox_lock = shared\nhost_name = pop 1\n",
                   r"fastpop\.conf:\d+: host_name: \"pop 1\" is not a host name")
        self.check("mailbox_lock_stale = 1s\n",
                   r"fastpop\.conf:\d+: mailbox_lock_stale: 1 seconds is out of range")

    def test_default_host_name_is_the_systems(self):
        d = Daemon(workers=1, extra_config="mailbox_lock = shared\n")
        self.addCleanup(d.cleanup)
        r = subprocess.run([os.path.join(BIN, "fastpopd"), "-n", "-c", d.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("host_name = %s\n" % os.uname().nodename, r.stdout)


if __name__ == "__main__":
    main()

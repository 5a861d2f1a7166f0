"""etc/init.d/fastpop drives the real daemon: start (daemonized, pidfile),
status, reload, stop, and a refused start on a broken config."""
import os
import subprocess
import unittest

from fastpop_harness import BIN, SRC, Daemon, proc_status, wait_until, main

SCRIPT = os.path.join(SRC, "etc", "init.d", "fastpop")


class InitScript(unittest.TestCase):
    def setUp(self):
        self.d = Daemon()
        self.addCleanup(self.cleanup)

    def cleanup(self):
        self.init("stop")
        self.d.cleanup()

    def init(self, action):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "DAEMON": os.path.join(BIN, "fastpopd"), "CONF": self.d.conf}
        with open(self.d.log_path, "ab") as log:
            r = subprocess.run(["sh", SCRIPT, action], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=log, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace")

    def pid(self):
        with open(os.path.join(self.d.run_dir, "fastpopd.pid")) as f:
            return int(f.read())

    def test_start_status_reload_stop(self):
        self.assertEqual(self.init("status")[0], 3)
        rc, out = self.init("start")
        self.assertEqual(rc, 0, out + self.d.log())
        pid = self.pid()
        self.assertIsNotNone(proc_status(pid))
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        p.close()
        rc, out = self.init("status")
        self.assertEqual(rc, 0, out)
        # Starting twice is not an error for an init script, and changes nothing.
        self.assertEqual(self.init("start")[0], 0)
        self.assertEqual(self.pid(), pid)
        rc, out = self.init("reload")
        self.assertEqual(rc, 0, out)
        self.d.wait_log("reloaded")
        rc, out = self.init("stop")
        self.assertEqual(rc, 0, out)
        wait_until(lambda: proc_status(pid) is None, timeout=15, what="master to exit")
        self.assertEqual(self.init("status")[0], 3)

    def test_broken_config_is_not_started(self):
        self.d.write_config(self.d.config_text() + "bogus_key = 1\n")
        rc, out = self.init("start")
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown setting \"bogus_key\"", self.d.log())
        self.assertFalse(os.path.exists(os.path.join(self.d.run_dir, "fastpopd.pid")))


if __name__ == "__main__":
    main()

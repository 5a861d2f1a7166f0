"""`make run`'s demo: the set-up script and the start script, and the curl
commands the start script prints really list and fetch the demo mail."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from fastpop_harness import BIN, SRC, free_port, wait_until, main


class Demo(unittest.TestCase):
    def setUp(self):
        # A throwaway "build" dir whose bin/ is the real one.
        self.build = tempfile.mkdtemp(prefix="fastpop-demo-")
        os.chmod(self.build, 0o755)
        os.symlink(os.path.abspath(BIN), os.path.join(self.build, "bin"))
        self.env = dict(os.environ, FASTPOP_DEMO_PORT=str(free_port()),
                        FASTPOP_DEMO_TLS_PORT=str(free_port()),
                        FASTPOP_DEMO_METRICS_PORT=str(free_port()))
        self.proc = None
        self.addCleanup(self.cleanup)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        shutil.rmtree(self.build, ignore_errors=True)

    def test_printed_curl_commands_work(self):
        subprocess.run(["sh", os.path.join(SRC, "t/tools/make-demo.sh"), self.build],
                       env=self.env, check=True, capture_output=True, timeout=60)
        log = open(os.path.join(self.build, "run.log"), "wb")
        self.proc = subprocess.Popen(["sh", os.path.join(SRC, "t/tools/run-demo.sh"),
                                      self.build], env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)

        def output():
            with open(os.path.join(self.build, "run.log")) as f:
                return f.read()
        wait_until(lambda: "started:" in output(), timeout=20, what="the demo server")
        commands = [l.split("#")[0].strip() for l in output().splitlines()
                    if l.strip().startswith("curl ")]
        self.assertEqual(len(commands), 4, output())
        listing = subprocess.run(shlex.split(commands[0]), capture_output=True, text=True,
                                 timeout=30)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        lines = listing.stdout.splitlines()
        self.assertEqual([l.split()[0] for l in lines], ["1", "2"])
        fetch = subprocess.run(shlex.split(commands[1]), capture_output=True, text=True,
                               timeout=30)
        self.assertIn("Subject: Welcome to fastpop", fetch.stdout)
        uidl = subprocess.run(shlex.split(commands[2]), capture_output=True, text=True,
                              timeout=30)
        self.assertRegex(uidl.stdout, r"^1 \d+\.M1P1\.demo\r?\n2 ")
        # The metrics line counts those three logins.
        metrics = subprocess.run(commands[3], shell=True, capture_output=True, text=True,
                                 timeout=30)
        ok = re.findall(r'(?m)^fastpop_logins_total\{mechanism="[^"]+",result="ok"\} (\d+)$',
                        metrics.stdout)
        self.assertEqual(sum(map(int, ok)), 3, metrics.stdout)
        popctl = [l.split("#")[0].strip() for l in output().splitlines()
                  if "/popctl " in l]
        self.assertEqual(len(popctl), 1, output())
        stats = subprocess.run(shlex.split(popctl[0]), capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(stats.returncode, 0, stats.stderr)
        logins = re.search(r"(?m)^logins +(.*)$", stats.stdout).group(1)
        self.assertEqual(sum(int(v) for k, v in re.findall(r"(\S+)/ok=(\d+)", logins)), 3,
                         stats.stdout)
        # The same listing without TLS is refused: the demo follows the default policy.
        plain = commands[0].replace("--ssl-reqd", "")
        self.assertEqual(subprocess.run(shlex.split(plain), capture_output=True,
                                        timeout=30).returncode, 67)


if __name__ == "__main__":
    main()

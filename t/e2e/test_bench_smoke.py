"""A seconds-long smoke of the benchmark tools (t/bench), so they keep working.

popload plays each scenario briefly against a real fastpopd on a tiny corpus
written by mkcorpus.py, and against its own null server; delivery.py delivers
and drains a few messages. Only correctness is asserted (no errors, every
message downloaded and deleted): never timing, machines are shared.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import fastpop_harness as h  # noqa: E402

BENCH = os.path.join(h.SRC, "t", "bench")
OPENSSL = shutil.which("openssl")
SOURCES = ("popload.c", "client.c", "nullserver.c", "procstat.c", "hist.c", "tlsclient.c")
_built = {}


def popload_path():
    """build/bin/popload when CMake builds it (add_subdirectory(t/bench)), else cc it here."""
    built = os.path.join(h.BIN, "popload")
    if os.path.exists(built):
        return built
    if "path" not in _built:
        out = tempfile.mkdtemp(prefix="fastpop-popload-")
        _built["dir"] = out
        exe = os.path.join(out, "popload")
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise unittest.SkipTest("no C compiler to build popload")
        subprocess.run([cc, "-std=c11", "-O2", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                        "-o", exe] + [os.path.join(BENCH, s) for s in SOURCES] +
                       ["-lssl", "-lcrypto"], check=True)
        _built["path"] = exe
    return _built["path"]


def popload(*args, timeout=60):
    p = subprocess.run([popload_path(), "--quiet"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "popload printed no JSON (exit %d):\n%s\n%s" % (p.returncode, p.stdout,
                                                                 p.stderr)
    return json.loads(lines[-1]), p


class BenchSmoke(h.DaemonTest):
    users = {"user0001": "benchpw"}

    def setUp(self):
        super().setUp()
        subprocess.run([sys.executable, os.path.join(BENCH, "mkcorpus.py"), "--dir", self.d.dir,
                        "--users", "10", "--drain-users", "4", "--idle-users", "5",
                        "--delivery-users", "4",
                        "--msgs-min", "1", "--msgs-max", "4", "--big-fraction", "0.1",
                        "--seed", "7"], check=True, capture_output=True)
        self.d._own(self.d.mail)
        if h.IS_ROOT:
            import grp
            os.chown(self.d.passwd, 0, grp.getgrnam(h.AUTH_USER).gr_gid)
            os.chmod(self.d.passwd, 0o640)
        # An implicit-TLS listener beside the plain one, as compare.sh has it, with a
        # throwaway self-signed certificate.
        self.tls_port = None
        extra = ""
        if OPENSSL:
            cert, key = os.path.join(self.d.dir, "tls.pem"), os.path.join(self.d.dir, "tls.key")
            subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                            "/CN=fastpop-bench", "-keyout", key, "-out", cert],
                           check=True, capture_output=True, timeout=60)
            os.chmod(key, 0o600)
            self.tls_port = h.free_port()
            extra = "listen = 127.0.0.1:%d tls\ntls_cert = %s\ntls_key = %s\n" % (
                self.tls_port, cert, key)
        text = self.d.config_text(extra)
        # The scenarios send USER/PASS in the clear: the default (plaintext_auth = no)
        # would refuse them, so the benchmark's config (and this one) must say yes.
        self.assertIn("plaintext_auth = yes\n", text)
        self.d.write_config(text)
        self.d.start()

    def run_ok(self, *args):
        r, p = popload("--port", self.d.port, "--password", "benchpw",
                       "--server-pid", self.d.pid, *args)
        self.assertEqual(r["errors"], 0, "%s\n%s" % (r, p.stderr))
        self.assertGreater(r["sessions"], 0, r)
        return r

    def test_scenarios_against_fastpopd(self):
        r = self.run_ok("--scenario", "login", "--users", 10, "--concurrency", 5,
                        "--duration", 2)
        self.assertIn("server_cpu_ms_per_session", r)
        r = self.run_ok("--scenario", "download", "--users", 10, "--concurrency", 5,
                        "--duration", 2)
        self.assertGreater(r["retr_octets"], 0, r)
        r = self.run_ok("--scenario", "bigbox", "--user", "user0001", "--concurrency", 1,
                        "--sessions", 2, "--stat-only")
        self.assertEqual(r["sessions"], 2, r)
        r = self.run_ok("--scenario", "idle", "--first-user", 15, "--users", 5,
                        "--connections", 5, "--hold", 0.5, "--concurrency", 5, "--duration", 10)
        self.assertEqual(r["established"], 5, r)
        self.assertIn("pss_kb_per_conn", r)
        # drain last: it empties users 11-14, each exactly once
        r = self.run_ok("--scenario", "drain", "--first-user", 11, "--users", 4,
                        "--concurrency", 2, "--duration", 10)
        self.assertEqual(r["sessions"], 4, r)
        for n in range(11, 15):
            self.assertEqual(self.d.messages("user%04d" % n), [])

    def test_tls(self):
        if not self.tls_port:
            self.skipTest("no openssl CLI for a throwaway certificate")
        # Implicit TLS with resumption: every session after a slot's first resumes.
        r = self.run_ok("--port", self.tls_port, "--tls", "implicit", "--tls-resume",
                        "--tls-cert", "ecdsa", "--scenario", "login", "--users", 10,
                        "--concurrency", 2, "--sessions", 6)
        self.assertEqual(r["sessions"], 6, r)
        self.assertEqual(r["tls_handshakes"], 6, r)
        self.assertEqual(r["tls_resumed"], 4, r)
        self.assertEqual(r["tls_version"], "TLSv1.3", r)
        self.assertTrue(r["tls_key"].startswith("ECDSA"), r)
        # STLS on the plain port, a whole mailbox downloaded and checked.
        r = self.run_ok("--tls", "stls", "--scenario", "download", "--users", 10,
                        "--concurrency", 2, "--sessions", 4)
        self.assertEqual((r["sessions"], r["tls_handshakes"], r["tls_resumed"]), (4, 4, 0), r)
        self.assertGreater(r["retr_octets"], 0, r)
        # idle over implicit TLS: memory per connection measured.
        r = self.run_ok("--port", self.tls_port, "--tls", "implicit", "--scenario", "idle",
                        "--first-user", 15, "--users", 5, "--connections", 5, "--hold", 0.5,
                        "--concurrency", 5, "--duration", 10)
        self.assertEqual(r["established"], 5, r)
        self.assertIn("pss_kb_per_conn", r)

    def delivery(self, *args):
        p = subprocess.run([sys.executable, os.path.join(BENCH, "delivery.py"), "--port",
                            str(self.d.port), "--server-pid", str(self.d.pid), "--mail-root",
                            self.d.mail, "--mail-user", h.MAIL_USER, "--password", "benchpw",
                            "--quiet"] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=120)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        self.assertTrue(lines, "delivery.py printed no JSON (exit %d):\n%s\n%s" % (
            p.returncode, p.stdout, p.stderr))
        return json.loads(lines[-1]), p

    def test_delivery_and_small_drain(self):
        # Users 20-23 have empty maildirs. One trial: 2 users, 10 mail/s for 2 s; a
        # deadline of 30 s only so that a slow (sanitizer) build still gets every
        # message within the trial: what is checked is that each one was downloaded
        # and deleted, not how fast.
        r, p = self.delivery("--first-user", 20, "--users", 2, "--rate", 10, "--duration", 2,
                             "--poll-interval", 0.5, "--deadline", 30, "--deliverers", 2)
        t = r["trials"][0]
        self.assertEqual(t["delivered"], 20, "%s\n%s" % (t, p.stderr))
        self.assertEqual(t["done"], 20, t)
        self.assertEqual(t["errors"], 0, t)
        self.assertTrue(t["passed"], t)
        self.assertIsNotNone(t["server_cpu_ms_per_msg"], t)
        for n in (20, 21):
            self.assertEqual(self.d.messages("user%04d" % n), [])
        # The drain (postal's rabid): 5 messages for each of 2 users, 2 clients.
        r, p = self.delivery("--drain", "--first-user", 22, "--users", 2,
                             "--messages-per-user", 5, "--clients", 2)
        self.assertEqual(r["errors"], 0, "%s\n%s" % (r, p.stderr))
        self.assertEqual(r["messages"], 10, r)
        self.assertEqual(r["short_mailboxes"], 0, r)
        for n in (22, 23):
            self.assertEqual(self.d.messages("user%04d" % n), [])

    def test_refuses_non_loopback(self):
        r = subprocess.run([popload_path(), "--host", "192.0.2.1", "--port", "110",
                            "--users", "1", "--concurrency", "1"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("loopback", r.stderr)


class NullServerSmoke(unittest.TestCase):
    def test_null_server(self):
        port = h.free_port()
        null = subprocess.Popen([popload_path(), "--null-server", str(port), "--procs", "1"],
                                stderr=subprocess.DEVNULL)
        try:
            h.wait_until(lambda: _greets(port), 10, what="the null server")
            for scenario in ("login", "download"):
                r, p = popload("--port", port, "--scenario", scenario, "--users", 10,
                               "--concurrency", 5, "--duration", 1, "--server-pid", null.pid)
                self.assertEqual(r["errors"], 0, "%s\n%s" % (r, p.stderr))
                self.assertGreater(r["sessions"], 0, r)
        finally:
            null.send_signal(signal.SIGTERM)
            null.wait(10)


def _greets(port):
    try:
        p = h.Pop3(port, timeout=2)
        ok = p.line().startswith("+OK")
        p.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    try:
        h.main()
    finally:
        if "dir" in _built:
            shutil.rmtree(_built["dir"], ignore_errors=True)

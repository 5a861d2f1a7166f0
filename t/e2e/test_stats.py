"""popctl stats and GET /metrics against a running fastpopd: counters that
add up to what the test did (scraped with curl during the load, kept across
a killed worker and a reload), the three formats, --reset (refused to a
read-only caller; /metrics is never reset), the endpoint's HTTP answers and
limits, and metrics_listen errors with file:line."""
import base64
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from fastpop_harness import (BIN, IS_ROOT, DaemonTest, children_of, free_port, main,
                             proc_status, wait_until)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
                    r' (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_prometheus(text, test):
    """A strict reading of the text format 0.0.4. Returns {(name, labels): value}.

    HELP and TYPE once per family and before its samples; every sample
    belongs to the family of the last TYPE line; counters end in _total and
    are never negative; a histogram's buckets rise to le="+Inf", which equals
    its _count.
    """
    types, helps, samples = {}, set(), {}
    current = None
    test.assertTrue(text.endswith("\n"), "the document ends with a newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            test.assertNotIn(name, helps, "HELP twice for " + name)
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            test.assertNotIn(name, types, "TYPE twice for " + name)
            test.assertIn(kind, ("counter", "gauge", "histogram"))
            test.assertIn(name, helps, "HELP before TYPE for " + name)
            test.assertTrue(name.startswith("fastpop_"), name)
            types[name] = kind
            current = name
            continue
        m = SAMPLE.match(line)
        test.assertIsNotNone(m, "not a sample line: %r" % line)
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        kind = types[current]
        allowed = {current} if kind != "histogram" else \
            {current + s for s in ("_bucket", "_sum", "_count")}
        test.assertIn(name, allowed, "%s outside its family %s" % (name, current))
        if kind == "counter":
            test.assertTrue(name.endswith("_total"), name)
            test.assertGreaterEqual(value, 0, line)
        key = (name, tuple(sorted(LABEL.findall(labels))))
        test.assertNotIn(key, samples, "sample twice: " + line)
        samples[key] = value
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float(le), v))
        test.assertTrue(series, "histogram %s without buckets" % name)
        for rest, buckets in series.items():
            buckets.sort()
            test.assertEqual(buckets[-1][0], float("inf"))
            counts = [v for _, v in buckets]
            test.assertEqual(counts, sorted(counts), "%s%s not cumulative" % (name, rest))
            test.assertEqual(counts[-1], samples[(name + "_count", rest)])
            test.assertIn((name + "_sum", rest), samples)
    return samples


def listening_inode(port):
    """The inode of the TCP socket listening on 127.0.0.1:port, or None."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and local == "0100007F:%04X" % port:
                return inode
    return None


def holders(pids, inode):
    """Those of pids that hold socket inode open."""
    found = []
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


MESSAGES = {
    "alice": [b"Subject: one\n\nfirst\n",
              b"Subject: two\n\n.a line with a dot\n..two dots\nend\n",
              b"Subject: three\n\n" + b"x" * 5000 + b"\n"],
    "bob": [b"Subject: b1\n\nbob one\n", b"Subject: b2\n\nbob two\n"],
}


class StatsTest(DaemonTest):
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def setUp(self):
        self.metrics_port = free_port()
        self.extra_config = "metrics_listen = 127.0.0.1:%d\n" % self.metrics_port
        if IS_ROOT:
            self.extra_config += "control_group = vmail\n"
        super().setUp()
        for user, msgs in MESSAGES.items():
            for i, data in enumerate(msgs):
                self.d.deliver(user, data, name="%d.M%dP1.host" % (1700000000 + i, i))
        self.d.start()
        self.sock = os.path.join(self.d.run_dir, "control.sock")

    def popctl(self, *args, user=None):
        cmd = [os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", self.sock] + list(args)
        if user:
            cmd = ["runuser", "-u", user, "--"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    def curl(self, *args, path="/metrics"):
        # Bytes, decoded by hand: text mode would turn the header's CRLFs into LFs.
        r = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args) +
                           ["http://127.0.0.1:%d%s" % (self.metrics_port, path)],
                           capture_output=True, timeout=30)
        r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
        return r

    def scrape(self):
        r = self.curl("-D", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        head, body = r.stdout.split("\r\n\r\n", 1)
        self.assertTrue(head.startswith("HTTP/1.0 200"), head)
        self.assertIn("Content-Type: text/plain; version=0.0.4", head)
        return parse_prometheus(body, self)

    def poll_session(self, user="alice"):
        """A poller that downloads everything: what the counters must add up to."""
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.login(user, self.users[user]).startswith("+OK"))
        self.assertTrue(p.cmd("STAT").startswith("+OK"))
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        p.multiline()
        sizes = []
        for n in range(1, len(MESSAGES[user]) + 1):
            r = p.cmd("RETR %d" % n)
            self.assertTrue(r.startswith("+OK"), r)
            sizes.append(int(r.split()[1]))
            self.assertEqual(len(p.multiline()), sizes[-1])
        self.assertTrue(p.cmd("TOP 1 0").startswith("+OK"))
        top = len(p.multiline())
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        return sum(sizes), top

    def test_counters_add_up_during_load(self):
        before = self.scrape()
        results, errors = [], []

        def load():
            try:
                for _ in range(5):
                    results.append(self.poll_session())
            except Exception as e:  # reported below
                errors.append(e)

        # Two pollers of alice would fight over her lock: one thread polls,
        # the main thread scrapes meanwhile.
        t = threading.Thread(target=load)
        t.start()
        scrapes = []
        deadline = time.monotonic() + 60
        while t.is_alive() and time.monotonic() < deadline:
            scrapes.append(self.scrape())
        t.join(60)
        self.assertFalse(errors, errors)
        self.assertGreater(len(scrapes), 0)
        # Counters and histograms never go backwards between scrapes.
        for a, b in zip([before] + scrapes, scrapes):
            for key, v in a.items():
                if key[0].endswith(("_total", "_bucket", "_count", "_sum")):
                    self.assertGreaterEqual(b[key], v, key)

        # A wrong password, then AUTH PLAIN for bob with one DELE.
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.login("bob", "wrong").startswith("-ERR [AUTH]"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        creds = base64.b64encode(b"\0bob\0bob-secret").decode()
        self.assertTrue(p.cmd("AUTH PLAIN " + creds).startswith("+OK"))
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        # Sessions are counted as they end: after the client has closed.
        quits = lambda m: value(m, "fastpop_sessions_ended_total", reason="quit")
        after = wait_until(lambda: (lambda m: m if quits(m) - quits(before) >= 7 else None)(
            self.scrape()), 10, what="seven sessions ended by QUIT")
        # The session line names the mechanism ("-" for none).
        self.assertRegex(self.d.log(), r"session user=bob .* tls=no mechanism=PLAIN commands=3 ")
        self.assertRegex(self.d.log(), r"session user=- .* tls=no mechanism=- commands=0 ")
        delta = lambda name, **l: value(after, name, **l) - value(before, name, **l)
        retr_bytes = sum(r[0] for r in results)
        top_bytes = sum(r[1] for r in results)
        self.assertEqual(delta("fastpop_logins_total", mechanism="USER", result="ok"), 5)
        self.assertEqual(delta("fastpop_logins_total", mechanism="USER", result="failed"), 1)
        self.assertEqual(delta("fastpop_logins_total", mechanism="PLAIN", result="ok"), 1)
        self.assertEqual(delta("fastpop_connections_accepted_total"), 7)
        self.assertEqual(delta("fastpop_sessions_ended_total", reason="quit"), 7)
        self.assertEqual(delta("fastpop_sent_bytes_total", command="RETR"), retr_bytes)
        self.assertEqual(delta("fastpop_sent_bytes_total", command="TOP"), top_bytes)
        self.assertEqual(delta("fastpop_messages_deleted_total"), 1)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="RETR"), 15)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="TOP"), 5)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="PASS"), 6)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="AUTH"), 1)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="DELE"), 1)
        self.assertEqual(delta("fastpop_command_duration_seconds_count", command="QUIT"), 7)
        # Every login went to the cache first; whatever it missed went to the helper.
        lookups = delta("fastpop_auth_cache_lookups_total", result="hit") + \
            delta("fastpop_auth_cache_lookups_total", result="miss")
        self.assertEqual(lookups, 7)
        self.assertEqual(delta("fastpop_auth_helper_duration_seconds_count"),
                         delta("fastpop_auth_cache_lookups_total", result="miss"))
        syncs = delta("fastpop_index_sync_duration_seconds_count", result="unchanged") + \
            delta("fastpop_index_sync_duration_seconds_count", result="rescan")
        self.assertEqual(syncs, 6)
        self.assertEqual(value(after, "fastpop_workers"), 2)
        self.assertEqual(value(after, "fastpop_connections"), 0)

        # popctl stats --prometheus is the same document (since start, nothing reset yet).
        r = self.popctl("stats", "--prometheus")
        self.assertEqual(r.returncode, 0, r.stderr)
        prom = parse_prometheus(r.stdout, self)
        self.assertEqual(set(prom), set(after))
        self.assertEqual(value(prom, "fastpop_logins_total", mechanism="USER", result="ok"),
                         value(after, "fastpop_logins_total", mechanism="USER", result="ok"))

        # A worker that served sessions killed with kill -9, and a reload: nothing is lost.
        served = {int(pid) for pid in
                  re.findall(r"fastpop worker\[\d+\] (\d+) info: session user=alice ", self.d.log())}
        victim = next(pid for pid in self.d.workers_pids() if pid in served)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in self.d.workers_pids() and
                   len(self.d.workers_pids()) == 2, 15, what="worker respawn")
        old = set(self.d.workers_pids())
        r = self.popctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: not old & set(self.d.workers_pids()) and
                   len(self.d.workers_pids()) == 2, 20, what="old workers to retire")
        kept = self.scrape()
        # The killed worker was respawned; the reload's retired workers were not crashes.
        self.assertEqual(value(kept, "fastpop_respawns_total", role="worker") -
                         value(after, "fastpop_respawns_total", role="worker"), 1)
        self.assertEqual(value(kept, "fastpop_respawns_total", role="auth"), 0)
        for key, v in after.items():
            if key[0].endswith(("_total", "_bucket", "_count", "_sum")):
                self.assertGreaterEqual(kept[key], v, key)
        self.assertEqual(value(kept, "fastpop_logins_total", mechanism="USER", result="ok"),
                         value(after, "fastpop_logins_total", mechanism="USER", result="ok"))
        self.poll_session()
        self.assertEqual(value(self.scrape(), "fastpop_logins_total", mechanism="USER",
                               result="ok"),
                         value(after, "fastpop_logins_total", mechanism="USER", result="ok") + 1)

    def test_text_json_and_reset(self):
        self.poll_session()
        r = self.popctl("stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^logins +USER/ok=1$")
        self.assertRegex(r.stdout, r"(?m)^ +command RETR +3 ")
        self.assertRegex(r.stdout, r"(?m)^now +0 open, 0 logged in, 2 workers$")

        r = self.popctl("--json", "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["logins"]["USER"]["ok"], 1)
        self.assertEqual(doc["command_duration_seconds"]["RETR"]["count"], 3)
        self.assertEqual(doc["command_duration_seconds"]["RETR"]["buckets"]["+Inf"], 3)
        self.assertEqual(doc["workers"], 2)
        self.assertIs(doc["draining"], False)

        if IS_ROOT:
            # control_group may read, not reset.
            r = self.popctl("stats", user="vmail")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = self.popctl("stats", "--reset", user="vmail")
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            self.assertIn("permission denied", r.stderr)

        r = self.popctl("stats", "--json", "--reset")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["logins"]["USER"]["ok"], 1)
        doc = json.loads(self.popctl("stats", "--json").stdout)
        self.assertEqual(doc["logins"]["USER"]["ok"], 0)
        self.assertEqual(doc["command_duration_seconds"]["RETR"]["count"], 0)
        # /metrics keeps counting from the start.
        self.assertEqual(value(self.scrape(), "fastpop_logins_total", mechanism="USER",
                               result="ok"), 1)
        self.assertIn("control: statistics reset", self.d.log())

        r = self.popctl("stats", "--yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: popctl stats", r.stderr)

    def test_http_answers_and_limits(self):
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", path="/nope")
        self.assertEqual(r.stdout, "404")
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST")
        self.assertEqual(r.stdout, "405")
        r = self.curl("-I")
        self.assertIn("HTTP/1.0 200", r.stdout)
        length = int(re.search(r"Content-Length: (\d+)", r.stdout).group(1))
        self.assertGreater(length, 1000)
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}", path="/metrics?x=1")
        self.assertEqual(r.stdout, "200")

        for request in (b"BLAH\r\n\r\n", b"GET /metrics HTTP/2.7\r\n\r\n",
                        b"GET /metrics\r\n\r\n", b"GET /metrics FOO\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", self.metrics_port), timeout=10)
            self.addCleanup(s.close)
            s.sendall(request)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.0 400"), request)
            # The server shut its side and waits for ours: answered, not reset.
            self.assertEqual(s.recv(4096), b"")
            s.close()
        # Those slots are free again once the master saw the closes.
        wait_until(lambda: self.curl("-o", "/dev/null", "-w", "%{http_code}").stdout == "200",
                   10, what="a scrape to be answered")

        # Eight silent clients fill the table: the ninth is told 503, none hangs the master.
        silent = []
        for _ in range(8):
            c = socket.create_connection(("127.0.0.1", self.metrics_port), timeout=10)
            self.addCleanup(c.close)
            silent.append(c)
        time.sleep(0.3)
        r = self.curl("-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(r.stdout, "503")
        r = self.popctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        # They are closed once their 5 s are up; then scrapes work again.
        start = time.monotonic()
        for c in silent:
            c.settimeout(15)
            self.assertEqual(c.recv(10), b"")
        self.assertLess(time.monotonic() - start, 12)
        self.scrape()

        # A request that never ends is cut at 8 KB.
        s = socket.create_connection(("127.0.0.1", self.metrics_port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Long: " + b"a" * 9000)
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.0 431"))

    def metrics_server(self):
        """The one child of the master holding the metrics socket (it serves it)."""
        inode = listening_inode(self.metrics_port)
        self.assertIsNotNone(inode, "nothing listens on the metrics port")
        found = holders(children_of(self.d.pid), inode)
        return found[0] if len(found) == 1 else None

    @unittest.skipUnless(IS_ROOT, "privileges are only dropped when started as root")
    def test_metrics_served_by_an_unprivileged_child(self):
        """No HTTP parser in root: the child holding the socket has no uid 0, no caps."""
        pid = wait_until(self.metrics_server, 10, what="a child holding the metrics socket")
        self.assertNotEqual(pid, self.d.pid)
        st = proc_status(pid)
        nobody = pwd.getpwnam("nobody")
        self.assertEqual(st["Uid"].split(), [str(nobody.pw_uid)] * 4)
        self.assertEqual(st["Gid"].split(), [str(nobody.pw_gid)] * 4)
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(int(st["CapPrm"], 16), 0)
        self.assertEqual(int(st["CapAmb"], 16), 0)
        self.assertEqual(st["NoNewPrivs"], "1")
        # Neither a worker nor the helper: a process of its own, shown by popctl status.
        self.assertNotIn(pid, self.d.workers_pids() + self.d.helper_pids())
        self.assertEqual(self.d.metrics_pids(), [pid])
        r = self.popctl("--json", "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        status = json.loads(r.stdout)["rows"][0]
        self.assertEqual(status["metrics"], str(pid))
        self.assertNotIn(str(pid), status["workers"].split())
        self.scrape()

    def test_metrics_child_respawns_after_kill(self):
        pid = wait_until(self.metrics_server, 10, what="a child holding the metrics socket")
        before = self.scrape()
        os.kill(pid, signal.SIGKILL)
        fresh = wait_until(lambda: (lambda p: p if p not in (None, pid) else None)(
            self.metrics_server()), 15, what="a new metrics process")
        self.assertIn("metrics[0] pid %d killed by signal 9" % pid, self.d.log())
        after = self.scrape()
        self.assertEqual(value(after, "fastpop_respawns_total", role="metrics") -
                         value(before, "fastpop_respawns_total", role="metrics"), 1)
        self.assertGreaterEqual(value(after, "fastpop_connections_accepted_total"),
                                value(before, "fastpop_connections_accepted_total"))
        self.assertEqual(self.d.metrics_pids(), [fresh])

    def test_malformed_flood_leaves_the_master_alone(self):
        """Garbage, half requests and oversized headers at /metrics: popctl keeps answering."""
        stop = threading.Event()
        sent = []

        def flood():
            garbage = [b"\x00\xff" * 3000, b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 9000,
                       b"GET " + b"/" * 5000 + b" HTTP/1.1\r\n\r\n", b"\r\n\r\n",
                       b"GET /metrics HTTP/1.1\r\nHost: x", b"%n%s%x" * 100 + b"\n\n"]
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                for g in garbage:
                    try:
                        c = socket.create_connection(("127.0.0.1", self.metrics_port), timeout=2)
                        c.sendall(g)
                        c.close()
                        sent.append(1)
                    except OSError:
                        pass

        threads = [threading.Thread(target=flood) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(5):
                r = self.popctl("status")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("running", r.stdout + r.stderr)
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertGreater(len(sent), 20)
        self.assertIsNone(self.d.proc.poll())
        wait_until(lambda: self.curl("-o", "/dev/null", "-w", "%{http_code}").stdout == "200",
                   15, what="a scrape to be answered after the flood")

    def test_reload_moves_and_closes_metrics(self):
        old_port, old_pid = self.metrics_port, wait_until(self.metrics_server, 10,
                                                          what="the metrics process")
        self.metrics_port = free_port()
        self.d.write_config(self.d.config_text(
            "metrics_listen = 127.0.0.1:%d\n" % self.metrics_port +
            ("control_group = vmail\n" if IS_ROOT else "")))
        r = self.popctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.scrape()
        wait_until(lambda: listening_inode(old_port) is None, 10, what="the old port to close")
        wait_until(lambda: old_pid not in children_of(self.d.pid), 10,
                   what="the old metrics process to end")
        self.assertEqual(len(self.d.metrics_pids()), 1)

        self.d.write_config(self.d.config_text("control_group = vmail\n" if IS_ROOT else ""))
        r = self.popctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: listening_inode(self.metrics_port) is None and
                   not self.d.metrics_pids(), 10, what="/metrics to be off")
        r = self.popctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unfinished_commands_are_timed(self):
        """A cancelled AUTH and a RETR cut by the client's close still count."""
        def count(command):
            doc = json.loads(self.popctl("--json", "stats").stdout)
            return doc["command_duration_seconds"][command]["count"]

        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        self.assertEqual(p.cmd("*"), "-ERR Authentication cancelled")
        self.assertEqual(count("AUTH"), 1)

        self.d.deliver("bob", b"Subject: big\n\n" + b"y" * 1000 + b"\n" * 4000000)
        p = self.d.connect()
        self.addCleanup(p.close)
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.assertTrue(p.login("bob", "bob-secret").startswith("+OK"))
        p.send("RETR 3\r\n")
        self.assertTrue(p.line().startswith("+OK"))
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        p.close()
        wait_until(lambda: count("RETR") == 1, 10, what="the cut RETR to be counted")
        self.assertIn("reason=", self.d.log())

    def test_metrics_listen_errors(self):
        for bad, why in (("127.0.0.1", "expected addr:port"),
                         ("localhost:9110", "not an IPv4 or IPv6 address"),
                         ("127.0.0.1:0", "bad port")):
            text = self.d.config_text(self.extra_config.split("\n", 1)[1] +
                                      "metrics_listen = %s\n" % bad)
            path = os.path.join(self.d.dir, "bad.conf")
            with open(path, "w") as f:
                f.write(text)
            line = text.splitlines().index("metrics_listen = %s" % bad) + 1
            r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", path],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:%d: metrics_listen" % (path, line), r.stderr)
            self.assertIn(why, r.stderr)


class RefusalStatsTest(DaemonTest):
    """Connections turned away are counted by the limit that refused them."""
    extra_config = "max_connections_per_ip = 1\n"

    def test_refusals_by_limit(self):
        self.d.start()
        sock = os.path.join(self.d.run_dir, "control.sock")

        def popctl(*args):
            r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", sock] +
                               list(args), capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout

        before = json.loads(popctl("--json", "stats"))["connections_refused"]
        held = self.d.connect()
        self.addCleanup(held.close)
        self.assertTrue(held.line().startswith("+OK"))
        for _ in range(2):
            p = self.d.connect()
            self.addCleanup(p.close)
            self.assertTrue(p.line().startswith("-ERR [SYS/TEMP] Too many connections"))
        held.close()
        popctl("drain", "--no-wait", "--message", "maintenance")
        wait_until(lambda: json.loads(popctl("--json", "stats"))["connections"] == 0, 10,
                   what="the held connection to end")
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "-ERR [SYS/TEMP] maintenance")
        popctl("undrain")
        after = json.loads(popctl("--json", "stats"))["connections_refused"]
        self.assertEqual({k: after[k] - before[k] for k in after},
                         {"max_connections": 0, "max_connections_per_ip": 2, "descriptors": 0,
                          "draining": 1, "proxy_untrusted": 0})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What the proxy tier costs (issue 15): login sessions/s (USER, PASS, STAT,
QUIT; popload --wait-close, so a session ends when the server has closed it)
straight to one fastpop, and through nginx's mail proxy and fastpop-router to
1, 2 and 3 backends, in one run, rounds interleaved, with ratios to the
direct figure and the CPU the whole tier spent per session.

Everything runs on this machine over 127.0.0.0/8 (root: fastpopd drops
privileges as in the e2e tests): three backends (workers = 1 each, one
shared maildir tree, mailbox_lock = shared, a proxy_protocol listener with
plaintext_via_proxy for nginx and a direct listener for the baseline), one
router host per backend count (passwd file, no LDAP: users without mailHost
are spread by rendezvous hashing), one nginx (worker_processes 2) with a
server block per backend count. Every login checks the password twice: at
the router (nginx's auth_http) and at the backend.

    python3 t/bench/proxy_tier.py [--duration 5] [--rounds 3] [--concurrency 50]

Needs nginx's mail module and a built tree (FASTPOP_BIN or build/bin, with
popload). Prints a table and one JSON line per run.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from fastpop_harness import BIN, Daemon, children_of, free_port, wait_until  # noqa: E402
from farm_fixture import MAIL_MODULE, NGINX  # noqa: E402

PASSWORD = "benchpw"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """utime + stime of these processes now (a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def tree(pid):
    return [pid] + children_of(pid)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Tier:
    def __init__(self, users, messages):
        self.dir = tempfile.mkdtemp(prefix="fastpop-tier-")
        self.shared = os.path.join(self.dir, "mail")
        os.makedirs(self.shared)
        os.chmod(self.dir, 0o755)
        os.chmod(self.shared, 0o755)
        self.users = {"user%04d" % i: PASSWORD for i in range(1, users + 1)}
        self.messages = messages
        self.daemons = []
        self.nginx = None

    def daemon(self, extra):
        d = Daemon(workers=1, users=self.users)
        self.daemons.append(d)
        d.mail = self.shared
        d.extra_config = extra
        d.write_config()
        return d

    def start(self):
        self.backends = []
        for n in (1, 2, 3):
            port = free_port()
            d = self.daemon("listen = 127.0.1.%d:%d proxy_protocol plaintext_via_proxy\n"
                            "proxy_trusted = 127.0.0.1/32\n"
                            "mailbox_lock = shared\n"
                            "host_name = pop%d\n" % (n, port, n))
            d.proxy_addr = ("127.0.1.%d" % n, port)
            self.backends.append(d)
        for user in self.users:
            for k in range(self.messages):
                self.backends[0].deliver(user, "Subject: %d\r\n\r\n%s\r\n" % (k, "x" * 2000))
        self.routers = []
        for count in (1, 2, 3):
            port = free_port()
            r = self.daemon("router_listen = 127.0.0.1:%d\n"
                            "router_backends = %s\n"
                            "router_check_interval = 1s\n"
                            "router_proxy_protocol = yes\n" % (
                                port, " ".join("pop%d=%s:%d" % (i + 1, *b.proxy_addr)
                                               for i, b in enumerate(self.backends[:count]))))
            r.router_port = port
            self.routers.append(r)
        for d in self.daemons:
            d.start()
        self.proxy_ports = [free_port() for _ in range(3)]
        conf = os.path.join(self.dir, "nginx.conf")
        servers = "".join("    server {\n        listen 127.0.0.1:%d;\n        protocol pop3;\n"
                          "        auth_http 127.0.0.1:%d/auth;\n    }\n" %
                          (p, r.router_port) for p, r in zip(self.proxy_ports, self.routers))
        with open(conf, "w") as f:
            f.write("load_module %s;\ndaemon off;\nworker_processes 2;\npid %s/nginx.pid;\n"
                    "error_log %s/error.log warn;\nevents { worker_connections 4096; }\n"
                    "mail {\n    server_name mail.test;\n    proxy_protocol on;\n"
                    "    proxy_pass_error_message on;\n    pop3_auth plain;\n%s}\n" %
                    (MAIL_MODULE, self.dir, self.dir, servers))
        self.nginx_log = open(os.path.join(self.dir, "nginx.stderr"), "ab")
        self.nginx = subprocess.Popen([NGINX, "-p", self.dir, "-c", conf, "-e",
                                       os.path.join(self.dir, "error.log")],
                                      stdin=subprocess.DEVNULL, stdout=self.nginx_log,
                                      stderr=self.nginx_log)
        # Every route answers: the router has checked its backends.
        for port in self.proxy_ports:
            wait_until(lambda: self.one_login(port), 30, interval=0.3,
                       what="a login through nginx port %d" % port)

    def one_login(self, port):
        r = subprocess.run([os.path.join(BIN, "popload"), "--port", str(port), "--scenario",
                            "login", "--user", "user0001", "--password", PASSWORD,
                            "--sessions", "1", "--concurrency", "1", "--wait-close",
                            "--quiet"], capture_output=True, text=True, timeout=30)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])["sessions"] == 1
        except (IndexError, ValueError, KeyError):
            return False

    def targets(self):
        """name -> (port, {part of the tier: its processes})."""
        out = {"direct": (self.backends[0].port, {"backends": tree(self.backends[0].pid)})}
        for i, port in enumerate(self.proxy_ports):
            out["nginx+%d" % (i + 1)] = (port, {
                "nginx": tree(self.nginx.pid), "router": tree(self.routers[i].pid),
                "backends": [p for b in self.backends[:i + 1] for p in tree(b.pid)]})
        return out

    def cleanup(self):
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGTERM)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait(5)
        for d in self.daemons:
            try:
                d.cleanup()
            except Exception as e:  # the others still go
                print("cleanup: %s" % e, file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(port, parts, a):
    before = {k: cpu_seconds(v) for k, v in parts.items()}
    r = subprocess.run([os.path.join(BIN, "popload"), "--port", str(port), "--scenario", "login",
                        "--users", str(a.users), "--password", PASSWORD, "--concurrency",
                        str(a.concurrency), "--duration", str(a.duration), "--sources",
                        str(a.sources), "--wait-close", "--quiet"],
                       capture_output=True, text=True, timeout=a.duration + 120)
    cpu = {k: cpu_seconds(v) - before[k] for k, v in parts.items()}
    line = json.loads(r.stdout.strip().splitlines()[-1])
    n = line["sessions"]
    for k in ("nginx", "router", "backends"):
        line["%s_cpu_ms_per_session" % k] = 1000 * cpu[k] / n if n and k in cpu else None
    line["tier_cpu_ms_per_session"] = 1000 * sum(cpu.values()) / n if n else None
    return line


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=5, help="seconds per run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--sources", type=int, default=50,
                   help="client addresses 127.0.0.2.. (per-address limits)")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--messages", type=int, default=5, help="per user, 2 KB each")
    a = p.parse_args()
    if not os.path.exists(MAIL_MODULE):
        sys.exit("nginx's mail module is not installed (%s)" % MAIL_MODULE)
    tier = Tier(a.users, a.messages)
    results = {}
    load_start = loadavg()
    try:
        tier.start()
        targets = tier.targets()
        names = list(targets)
        for name in names:   # warm-up: caches, indexes, the routers' health
            run(targets[name][0], targets[name][1], argparse.Namespace(**dict(
                vars(a), duration=1)))
        for rnd in range(a.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                line = run(targets[name][0], targets[name][1], a)
                line.update(target=name, round=rnd + 1)
                print(json.dumps(line), flush=True)
                results.setdefault(name, []).append(line)
    finally:
        tier.cleanup()
    load_end = loadavg()

    def med(name, key):
        vals = [x[key] for x in results[name] if x.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")
    base = med("direct", "sessions_per_s")
    print("\nlogin sessions/s (USER PASS STAT QUIT, wait for close), concurrency %d, %d s x %d "
          "rounds, median; loadavg %s -> %s, %d CPUs" % (a.concurrency, a.duration, a.rounds,
                                                      load_start, load_end, os.cpu_count()))
    print("| target | sessions/s | ratio to direct | p50 ms | p99 ms | CPU ms/session: tier "
          "| nginx | router | backends | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in results:
        sps = med(name, "sessions_per_s")
        print("| %s | %.0f | %.2f | %.1f | %.1f | %.2f | %s | %s | %.2f | %d |" % (
            name, sps, sps / base, med(name, "lat_p50_ms"), med(name, "lat_p99_ms"),
            med(name, "tier_cpu_ms_per_session"),
            *("-" if name == "direct" else "%.2f" % med(name, k + "_cpu_ms_per_session")
              for k in ("nginx", "router")),
            med(name, "backends_cpu_ms_per_session"), sum(x["errors"] for x in results[name])))


if __name__ == "__main__":
    main()

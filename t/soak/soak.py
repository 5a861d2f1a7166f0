#!/usr/bin/env python3
"""A soak of fastpopd (issue 13): mixed load on loopback for --minutes.

  python3 t/soak/soak.py --minutes 60 [--bin build/bin] [--report soak.md]

Runs the real daemon (two workers, plain + implicit TLS listeners) and, at
the same time:
  - an MTA delivering into 20 users' maildirs (tmp/ then rename);
  - "deleting" clients (users d0-d9): login over plain, STLS or implicit
    TLS, UIDL, RETR everything, DELE everything, QUIT;
  - "leave on server" clients (users k0-k9): login, UIDL, RETR what they
    have not seen yet, QUIT; every UIDL must keep naming the same message;
  - clients with wrong passwords from 127.0.0.2-127.0.0.5;
  - slow readers (a big message read a few KB at a time);
  - `popctl reload` every 5 minutes, a worker killed every 7 minutes,
    `popctl drain` then `undrain` once at half time.
It ends by stopping deliveries and letting the deleting clients empty their
mailboxes, then checks the ledger: every message delivered to a deleting user
was downloaded by a session whose QUIT was answered +OK exactly once, and
nothing is left; no message of a leave-on-server user was lost or changed
UIDL. It reports sessions, errors by kind, RSS and open descriptors of every
process at start and end, and login latency percentiles per 5 minutes.
Exit status 0 only if the ledger holds and no process grew beyond the
stated bound (RSS +64 MB, descriptors +64 per process).

Not part of `make test` (it takes an hour); the README has the last figures.
"""
import argparse
import collections
import hashlib
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

RSS_BOUND_KB = 64 * 1024
FD_BOUND = 64
DELETERS = ["d%d" % i for i in range(10)]
KEEPERS = ["k%d" % i for i in range(10)]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = collections.Counter()
        self.errors = collections.Counter()
        self.latency = collections.defaultdict(list)   # window -> login seconds
        self.start = time.monotonic()

    def count(self, what):
        with self.lock:
            self.sessions[what] += 1

    def error(self, kind):
        with self.lock:
            self.errors[kind] += 1

    def login_took(self, seconds):
        window = int((time.monotonic() - self.start) // 300)
        with self.lock:
            self.latency[window].append(seconds)


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = collections.defaultdict(set)   # user -> message ids
        self.confirmed = collections.Counter()          # message id -> confirmed downloads
        self.uidl_of = {}                               # (user, uidl) -> message id
        self.problems = []

    def problem(self, text):
        with self.lock:
            if len(self.problems) < 100:
                self.problems.append(text)


def message_id(body):
    for line in body.split(b"\r\n"):
        if line.startswith(b"X-Soak-Id: "):
            return line[11:].decode()
        if not line:
            break
    return None


class Soak:
    def __init__(self, args):
        from fastpop_harness import Daemon
        from tls_fixture import CertFactory, client_context
        self.args = args
        self.stats = Stats()
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.no_deliveries = threading.Event()
        self.users = {u: "pw-" + u for u in DELETERS + KEEPERS}
        self.certs = CertFactory()
        cert = self.certs.issue("soak", ["mail.example.org"])
        self.tls_port = self._free_port()
        extra = ("listen = 127.0.0.1:%d tls\ntls_cert = %s\ntls_key = %s\n"
                 "control_group = %s\nauth_penalty = yes\n"
                 % (self.tls_port, cert.cert, cert.key, "vmail" if os.geteuid() == 0 else
                    __import__("grp").getgrgid(os.getgid()).gr_name))
        self.d = Daemon(workers=2, extra_config=extra, users=self.users)
        self.ctx = client_context(self.certs.ca)
        self.roots = {u: self.d.maildir(u) for u in self.users}
        self.owner = None
        if os.geteuid() == 0:
            import grp
            import pwd
            from fastpop_harness import MAIL_GROUP, MAIL_USER
            self.owner = (pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid)
        self.seq = 0
        self.seq_lock = threading.Lock()

    @staticmethod
    def _free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    # --- processes ----------------------------------------------------------
    def processes(self):
        from fastpop_harness import children_of
        out = {}
        for pid in [self.d.pid] + children_of(self.d.pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    st = dict(l.split(":\t", 1) for l in f if ":\t" in l)
                exe = os.path.basename(os.readlink("/proc/%d/exe" % pid))
                fds = len(os.listdir("/proc/%d/fd" % pid))
                role = "master" if pid == self.d.pid else exe
                out.setdefault(role, []).append(
                    (pid, int(st["VmRSS"].split()[0]), fds))
            except (OSError, KeyError):
                pass
        return out

    def popctl(self, *args):
        from fastpop_harness import BIN
        sock = os.path.join(self.d.run_dir, "control.sock")
        return subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", sock] +
                              list(args), capture_output=True, text=True, timeout=60)

    # --- load ---------------------------------------------------------------
    def deliver(self, user, size=None):
        with self.seq_lock:
            self.seq += 1
            seq = self.seq
        mid = "m%d" % seq
        size = size or random.choice([200, 2000, 20000])
        body = ("X-Soak-Id: %s\r\nSubject: soak %d\r\n\r\n" % (mid, seq) +
                ("line %d of %s\r\n" % (seq, mid)) * (size // 20)).encode()
        with self.ledger.lock:
            self.ledger.delivered[user].add(mid)
        # As an MTA does: write in tmp/, then rename into new/ (owned by the mail user).
        # Not the harness's deliver(): it walks the whole maildir, racing the server.
        name = "%d.M%dP%d.soak" % (int(time.time()), seq, os.getpid())
        root = self.roots[user]
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(body)
        if self.owner is not None:
            os.chown(tmp, *self.owner)
        os.rename(tmp, os.path.join(root, "new", name))

    def mta(self):
        while not self.stop.is_set() and not self.no_deliveries.is_set():
            try:
                self.deliver(random.choice(DELETERS + KEEPERS))
            except OSError as e:
                self.ledger.problem("delivery failed: %s" % e)
            time.sleep(1.0 / self.args.rate)

    def connect(self, how, source="127.0.0.1"):
        from fastpop_harness import Pop3
        from tls_fixture import starttls, tls_connect
        if how == "tls":
            p = tls_connect(self.tls_port, self.ctx, source=(source, 0), timeout=30)
            p.line()
        else:
            p = Pop3(self.d.port, timeout=30, source=(source, 0))
            p.line()
            if how == "stls":
                starttls(p, self.ctx)
        return p

    def session(self, user, delete):
        how = random.choice(["plain", "stls", "tls"])
        started = time.monotonic()
        got, dele = [], []
        try:
            p = self.connect(how)
        except (OSError, ssl.SSLError, EOFError) as e:
            self.stats.error("connect " + type(e).__name__)
            return
        try:
            r = p.cmd("USER " + user)
            r = p.cmd("PASS " + self.users[user])
            if not r.startswith("+OK"):
                self.stats.error("login " + r[:30])
                return
            self.stats.login_took(time.monotonic() - started)
            if not p.cmd("UIDL").startswith("+OK"):
                self.stats.error("uidl")
                return
            listing = [l.split(" ", 1) for l in p.multiline().decode().split("\r\n")[:-1]]
            for num, uidl in listing:
                with self.ledger.lock:
                    known = self.ledger.uidl_of.get((user, uidl))
                if not delete and known is not None:
                    continue
                r = p.cmd("RETR " + num)
                if not r.startswith("+OK"):
                    self.stats.error("retr " + r[:30])
                    return
                mid = message_id(p.multiline())
                if mid is None:
                    self.ledger.problem("%s: message %s without an id" % (user, uidl))
                    continue
                with self.ledger.lock:
                    old = self.ledger.uidl_of.setdefault((user, uidl), mid)
                if old != mid:
                    self.ledger.problem("%s: UIDL %s was %s, now %s" % (user, uidl, old, mid))
                got.append(mid)
                if delete:
                    if not p.cmd("DELE " + num).startswith("+OK"):
                        self.stats.error("dele")
                        return
                    dele.append(mid)
            r = p.cmd("QUIT")
            if r.startswith("+OK"):
                self.stats.count("deleting" if delete else "keeping")
                if delete:
                    with self.ledger.lock:
                        for mid in dele:
                            self.ledger.confirmed[mid] += 1
            else:
                self.stats.error("quit " + r[:30])
        except (OSError, ssl.SSLError, EOFError, ValueError) as e:
            self.stats.error("session " + type(e).__name__)
        finally:
            p.close()

    def client(self, users, delete):
        while not self.stop.is_set():
            self.session(random.choice(users), delete)
            time.sleep(random.uniform(0.0, 0.2))

    def guesser(self):
        while not self.stop.is_set():
            source = "127.0.0.%d" % random.randint(2, 5)
            try:
                p = self.connect("plain", source)
                # Names nobody has: the penalty lands on these addresses, not on real users.
                p.cmd("USER nobody%d" % random.randint(0, 9))
                r = p.cmd("PASS wrong-%d" % random.randint(0, 1 << 30))
                self.stats.count("bad-password" if r.startswith("-ERR") else "bad-password-ok?!")
                p.close()
            except (OSError, EOFError):
                self.stats.error("guesser connect")
            time.sleep(random.uniform(0.5, 2.0))

    def slow_reader(self):
        user = "k0"
        self.deliver(user, size=2_000_000)
        while not self.stop.is_set():
            try:
                p = self.connect("plain")
                p.cmd("USER " + user)
                if not p.cmd("PASS " + self.users[user]).startswith("+OK"):
                    p.close()
                    time.sleep(5)
                    continue
                p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                r = p.cmd("RETR 1")
                read = 0
                while r.startswith("+OK") and read < 300_000 and not self.stop.is_set():
                    chunk = p.sock.recv(4096)
                    if not chunk:
                        break
                    read += len(chunk)
                    time.sleep(0.01)
                p.close()
                self.stats.count("slow-reader")
            except (OSError, EOFError):
                self.stats.error("slow reader")
            time.sleep(1)

    def operator(self):
        start = time.monotonic()
        next_reload, next_kill, drained = start + 300, start + 420, False
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_reload:
                r = self.popctl("reload")
                self.stats.count("reload" if r.returncode == 0 else "reload-failed")
                next_reload += 300
            if now >= next_kill:
                workers = self.d.workers_pids()
                if workers:
                    os.kill(random.choice(workers), signal.SIGKILL)
                    self.stats.count("worker-killed")
                next_kill += 420
            if not drained and now >= start + self.args.minutes * 30:
                r = self.popctl("drain", "--deadline", "5")
                time.sleep(10)
                u = self.popctl("undrain")
                # Exit 1 from drain: sessions had to be cut at the deadline (expected here).
                self.stats.count("drain" if r.returncode in (0, 1) and u.returncode == 0
                                 else "drain-failed")
                drained = True
            time.sleep(1)

    # --- the run --------------------------------------------------------------
    def run(self):
        self.d.start()
        time.sleep(1)
        first = self.processes()
        threads = [threading.Thread(target=self.mta, daemon=True),
                   threading.Thread(target=self.guesser, daemon=True),
                   threading.Thread(target=self.slow_reader, daemon=True),
                   threading.Thread(target=self.operator, daemon=True)]
        threads += [threading.Thread(target=self.client, args=(DELETERS, True), daemon=True)
                    for _ in range(4)]
        threads += [threading.Thread(target=self.client, args=(KEEPERS, False), daemon=True)
                    for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(self.args.minutes * 60)
        # Deliveries end; deleting users are emptied by the clients still running.
        self.no_deliveries.set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = sum(len([n for n in os.listdir(os.path.join(self.roots[u], sub))
                            if not n.startswith(".")])
                       for u in DELETERS for sub in ("new", "cur"))
            if left == 0:
                break
            time.sleep(2)
        self.stop.set()
        for t in threads:
            t.join(60)
        last = self.processes()
        return self.report(first, last)

    def report(self, first, last):
        ok = True
        lines = ["# fastpop soak: %d minutes" % self.args.minutes, ""]
        # Ledger.
        with self.ledger.lock:
            delivered = {m for u in DELETERS for m in self.ledger.delivered[u]}
            kept = {m for u in KEEPERS for m in self.ledger.delivered[u]}
            never = sorted(m for m in delivered if self.ledger.confirmed[m] == 0)
            twice = sorted(m for m in delivered if self.ledger.confirmed[m] > 1)
        lines.append("- messages delivered to deleting users: %d; downloaded and deleted "
                     "exactly once: %d; never: %d; more than once: %d"
                     % (len(delivered), len(delivered) - len(never) - len(twice), len(never),
                        len(twice)))
        on_disk = set()
        for u in KEEPERS:
            root = self.roots[u]
            for sub in ("new", "cur"):
                for n in os.listdir(os.path.join(root, sub)):
                    with open(os.path.join(root, sub, n), "rb") as f:
                        mid = message_id(f.read(4096).replace(b"\r\n", b"\n")
                                         .replace(b"\n", b"\r\n"))
                    on_disk.add(mid)
        lost = sorted(kept - on_disk)
        lines.append("- messages delivered to leave-on-server users: %d; on disk at the end: "
                     "%d; lost: %s" % (len(kept), len(on_disk), ", ".join(lost) or "none"))
        if never or twice or lost or self.ledger.problems:
            ok = False
        for p in self.ledger.problems[:20]:
            lines.append("- PROBLEM: " + p)
        lines.append("- sessions: " + ", ".join("%s %d" % kv for kv in
                                                sorted(self.stats.sessions.items())))
        lines.append("- errors: " + (", ".join("%s %d" % kv for kv in
                                               sorted(self.stats.errors.items())) or "none"))
        lines += ["", "| process | pid | RSS start KB | RSS end KB | fds start | fds end |",
                  "|---|---|---|---|---|---|"]
        for role in sorted(set(first) | set(last)):
            a = first.get(role, [])
            b = last.get(role, [])
            for i in range(max(len(a), len(b))):
                pa = a[i] if i < len(a) else (0, 0, 0)
                pb = b[i] if i < len(b) else (0, 0, 0)
                lines.append("| %s | %s | %d | %d | %d | %d |" % (role, pb[0] or pa[0], pa[1],
                                                                 pb[1], pa[2], pb[2]))
                # Processes replaced during the run (reload, kill) are new ones: compare
                # the same pid only.
                if pa[0] == pb[0] and pa[0] and (pb[1] - pa[1] > RSS_BOUND_KB or
                                                 pb[2] - pa[2] > FD_BOUND):
                    ok = False
        lines += ["", "| minutes | logins | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
        for w in sorted(self.stats.latency):
            v = sorted(self.stats.latency[w])
            pct = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000
            lines.append("| %d-%d | %d | %.1f | %.1f | %.1f |" % (w * 5, w * 5 + 5, len(v),
                                                                pct(0.5), pct(0.95), pct(0.99)))
        lines += ["", "Result: %s (bounds: RSS +%d MB, fds +%d per process)"
                  % ("PASS" if ok else "FAIL", RSS_BOUND_KB // 1024, FD_BOUND)]
        return ok, "\n".join(lines) + "\n"

    def cleanup(self):
        self.stop.set()
        self.d.cleanup()
        self.certs.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=float, default=20, help="deliveries per second")
    ap.add_argument("--bin", help="directory of fastpopd (default build/bin)")
    ap.add_argument("--report", help="also write the report here")
    args = ap.parse_args()
    if args.bin:
        os.environ["FASTPOP_BIN"] = os.path.abspath(args.bin)
    soak = Soak(args)
    try:
        ok, text = soak.run()
    finally:
        soak.cleanup()
    sys.stdout.write(text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

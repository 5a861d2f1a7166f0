#!/usr/bin/env python3
"""Delivery and drain, end to end (issue 17 section 4). Standard library only.

  delivery.py --port P --mail-root DIR --first-user K [--users N] [--server-pid PID]
              [--rate R | --search] [--duration S] ...          the delivery scenario
  delivery.py --drain --port P --mail-root DIR --first-user K [--users N]
              [--messages-per-user M] [--clients C] ...         the drain (postal's rabid)

Delivery (Apache James's distributed POP3 test: 80 users, 100 mail/s, each user polled
with STAT, RETR, DELE, QUIT; SPECmail2001's quality rule): deliverer processes, as the
mail user, write messages into the N users' maildirs at a fixed total rate (tmp/, then
rename into new/, as an MTA does), while one POP3 client per user polls every
--poll-interval seconds: USER, PASS, STAT, RETR every message, DELE every message, QUIT.
A message counts as done when the QUIT that deleted it is answered +OK. A trial passes
when at least --quality (95%) of the messages delivered are done within --deadline (5 s)
of their rename into new/, and the deliverers kept the rate. --search runs trials at
rising rates (doubling from --start-rate, then bisecting between the last pass and the
first failure) within --budget seconds, each trial on fresh users (K, K+N, ...), and
reports the highest rate that passed. Server CPU per message: the server's process tree
(utime+stime, and cutime+cstime for children that exited) over the trial, divided by the
messages delivered; the idle polling of the N users is part of it, as on a real server.

Drain: --users users get --messages-per-user messages each in new/ (untimed, then
sync(2)); --clients POP3 clients (postal's rabid uses 20) take the users one at a time
(USER, PASS, STAT, RETR every message, DELE every message, QUIT) until all are empty.
Reports messages/s, MB/s and server CPU per message.

Messages: sizes log-uniform between --min-size and --max-size (default 1-64 KB), LF line
ends, dot lines, a header X-Bench-Seq that the client reads back; names
TIME.MusecPpidQseq.bench,S=size,W=size-with-CRLF (Dovecot LDA style, as mkcorpus.py).
The deliverer does not fsync unless --fsync: an fsync costs several ms on the benchmark
VM and would cap every server at the disk's rate. The servers' own fsyncs stay in.
Loopback only. One JSON line last on stdout.
"""
import argparse
import asyncio
import json
import math
import os
import pwd
import random
import re
import sys
import time

SEQ_RE = re.compile(rb"\nX-Bench-Seq: (\d+)\r\n")


# --- messages and deliverers ----------------------------------------------------------
def text_pool(seed, size=1 << 20):
    """LF text lines, some starting with '.', some a lone '.' (dot-stuffing on the wire)."""
    rng = random.Random("delivery-pool:%d" % seed)
    words = "the of and to in mail message server client delivery poll report regards".split()
    out, n = [], 0
    while n < size:
        r = rng.random()
        line = "." if r < 0.02 else ("." + rng.choice(words)) if r < 0.05 else \
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        out.append(line + "\n")
        n += len(line) + 1
    return "".join(out).encode()


def message(seq, user, size, pool, rng):
    head = ("Return-Path: <sender@bench.invalid>\nDelivered-To: %s\nMessage-ID: <%d@bench.invalid>\n"
            "From: sender@bench.invalid\nTo: %s@bench.invalid\nSubject: delivery %d\n"
            "X-Bench-Seq: %d\n\n" % (user, seq, user, seq, seq)).encode()
    need = max(0, size - len(head))
    start = rng.randrange(0, len(pool) - need - 1) if need < len(pool) - 1 else 0
    body = pool[start:start + need]
    if not body.endswith(b"\n"):
        body += b"\n"
    return head + body


def drop_to(mail_user):
    if mail_user and os.getuid() == 0:
        pw = pwd.getpwnam(mail_user)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


def write_one(root, seq, data, fsync):
    """tmp/NAME, then rename into new/NAME: what an MTA does. Returns the rename time."""
    now = time.time()
    name = "%d.M%06dP%dQ%d.bench,S=%d,W=%d" % (now, (now % 1) * 1e6, os.getpid(), seq,
                                                len(data), len(data) + data.count(b"\n"))
    tmp = os.path.join(root, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(root, "new", name))
    return time.monotonic()


class Deliverers:
    """K child processes, as the mail user; child k delivers seq k, k+K, ... at rate/K
    from the start time that start() hands them. Each writes 'seq time\\n' to a pipe
    after the rename (CLOCK_MONOTONIC is one clock for all processes). They are forked
    before any POP3 connection is open, so none holds a copy of a client socket."""

    def __init__(self, a, users, rate, duration):
        self.pids, self.fds, self.go = [], [], []
        pool = text_pool(a.seed)
        k_n = max(1, min(a.deliverers, int(math.ceil(rate))))
        total = int(rate * duration)
        for k in range(k_n):
            r, w = os.pipe()
            go_r, go_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                os.close(go_w)
                code = 1
                try:
                    drop_to(a.mail_user)
                    start = os.read(go_r, 64)
                    if start:
                        self.child(a, users, rate, float(start), k, k_n, total, pool, w)
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            os.close(go_r)
            self.pids.append(pid)
            self.fds.append(r)
            self.go.append(go_w)

    def start(self, t0):
        for fd in self.go:
            os.write(fd, b"%.6f" % t0)
            os.close(fd)
        self.go = []

    @staticmethod
    def child(a, users, rate, t0, k, k_n, total, pool, w):
        rng = random.Random("deliver:%d:%d" % (a.seed, k))
        out = []
        for seq in range(k, total, k_n):
            due = t0 + seq / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            user = users[rng.randrange(len(users))]
            data = message(seq, user, size_of(a, rng), pool, rng)
            t = write_one(os.path.join(a.mail_root, user, "Maildir"), seq, data, a.fsync)
            out.append("%d %.6f\n" % (seq, t))
            if len(out) >= 16:
                os.write(w, "".join(out).encode())
                out = []
        if out:
            os.write(w, "".join(out).encode())
        os.close(w)

    def reap(self):
        """Children's CPU seconds (rusage), once all have exited."""
        for fd in self.go:   # never started: they exit at EOF
            os.close(fd)
        cpu = 0.0
        for pid in self.pids:
            _, _, ru = os.wait4(pid, 0)
            cpu += ru.ru_utime + ru.ru_stime
        return cpu


def size_of(a, rng):
    return int(math.exp(rng.uniform(math.log(a.min_size), math.log(a.max_size))))


# --- server CPU ----------------------------------------------------------------------
def tree_cpu(root):
    """utime+stime+cutime+cstime of ROOT and its descendants, in seconds."""
    if not root:
        return None
    parent, ticks = {}, {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                f_ = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(e)] = int(f_[1])
        ticks[int(e)] = sum(int(x) for x in f_[11:15])
    tree, i = [root], 0
    while i < len(tree):
        tree += [p for p, pp in parent.items() if pp == tree[i]]
        i += 1
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


# --- the POP3 client ---------------------------------------------------------------
class PopError(Exception):
    pass


async def session(a, user):
    """One poll: returns (seqs deleted, octets retrieved). Raises PopError on -ERR."""
    # The reader's limit bounds one RETR reply: the largest message, stuffed, with CRLF.
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", a.port,
                                                          limit=4 * a.max_size + 65536), a.timeout)
    try:
        async def cmd(line, multi=False):
            if line:
                w.write(line)
            resp = await asyncio.wait_for(r.readline(), a.timeout)
            if not resp.startswith(b"+OK"):
                raise PopError("%s -> %r" % (line[:4].decode() if line else "greeting", resp[:80]))
            if multi:
                return await asyncio.wait_for(r.readuntil(b"\r\n.\r\n"), a.timeout)
            return resp

        await cmd(None)
        await cmd(b"USER %s\r\n" % user.encode())
        await cmd(b"PASS %s\r\n" % a.password.encode())
        n = int((await cmd(b"STAT\r\n")).split()[1])
        seqs, octets = [], 0
        for i in range(1, n + 1):
            body = await cmd(b"RETR %d\r\n" % i, multi=True)
            octets += len(body)
            m = SEQ_RE.search(body, 0, 4096)
            seqs.append(int(m.group(1)) if m else -1)
        for i in range(1, n + 1):
            await cmd(b"DELE %d\r\n" % i)
        await cmd(b"QUIT\r\n")
        return seqs, octets
    finally:
        w.close()


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def user_names(first, count):
    return ["user%04d" % n for n in range(first, first + count)]


# --- a delivery trial -------------------------------------------------------------
async def trial(a, rate, users):
    loop = asyncio.get_running_loop()
    delivered, done = {}, {}
    stats = {"sessions": 0, "errors": 0, "octets": 0, "unknown": 0}
    last_error = []
    stop = asyncio.Event()

    async def poller(user, offset):
        nxt = time.monotonic() + offset
        while not stop.is_set():
            wait = nxt - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except asyncio.TimeoutError:
                    pass
            nxt = time.monotonic() + a.poll_interval
            try:
                seqs, octets = await session(a, user)
            except (OSError, PopError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError, IndexError) as e:
                stats["errors"] += 1
                last_error[:] = ["%s: %s" % (user, e)]
                continue
            t = time.monotonic()
            stats["sessions"] += 1
            stats["octets"] += octets
            for s in seqs:
                if s >= 0:   # its delivery record may still be in the pipe
                    done[s] = t
                else:
                    stats["unknown"] += 1

    dl = Deliverers(a, users, rate, a.duration)
    # Pollers first: their first (cold) logins are over before the clock starts.
    tasks = [asyncio.ensure_future(poller(u, a.poll_interval * i / len(users)))
             for i, u in enumerate(users)]
    await asyncio.sleep(a.poll_interval + 1)
    cpu0, t0 = tree_cpu(a.server_pid), time.monotonic() + 0.2
    own0 = os.times()
    dl.start(t0)
    buf = {fd: b"" for fd in dl.fds}
    open_fds = set(dl.fds)

    def readable(fd):
        data = os.read(fd, 65536)
        if not data:
            loop.remove_reader(fd)
            open_fds.discard(fd)
            return
        lines = (buf[fd] + data).split(b"\n")
        buf[fd] = lines.pop()
        for l in lines:
            s, t = l.split()
            delivered[int(s)] = float(t)

    for fd in dl.fds:
        loop.add_reader(fd, readable, fd)
    expected = int(rate * a.duration)
    # Until every message delivered is done, or a message delivered last could no
    # longer make the deadline (plus one poll).
    hard_end = t0 + a.duration + a.deadline + a.poll_interval + 2
    while time.monotonic() < hard_end:
        await asyncio.sleep(0.2)
        if not open_fds and len(done.keys() & delivered.keys()) >= len(delivered):
            break
    while open_fds and time.monotonic() < hard_end + 60:
        await asyncio.sleep(0.2)   # a deliverer far behind: let it finish (not timed)
    t_end = time.monotonic()
    cpu1 = tree_cpu(a.server_pid)
    stop.set()
    await asyncio.wait(tasks, timeout=a.timeout + 5)
    for t in tasks:
        t.cancel()
    for fd in list(open_fds):
        loop.remove_reader(fd)
    for fd in dl.fds:
        os.close(fd)
    deliverer_cpu = dl.reap()
    own1 = os.times()
    lat = sorted(done[s] - delivered[s] for s in delivered if s in done)
    within = sum(1 for x in lat if x <= a.deadline)
    n = len(delivered)
    last_t = max(delivered.values()) if delivered else t0
    achieved = n / max(1e-9, last_t - t0) if n > 1 else 0.0
    kept_rate = n >= expected and last_t <= t0 + a.duration + max(1.0, 0.05 * a.duration)
    frac = within / n if n else 0.0
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return {
        "rate": rate, "users": len(users), "duration_s": a.duration, "delivered": n,
        "expected": expected, "delivery_rate": round(achieved, 1), "deliverer_kept_rate": kept_rate,
        "done": len(lat), "within_deadline": within, "fraction_within": round(frac, 4),
        "passed": bool(kept_rate and frac >= a.quality),
        "lat_p50_s": pct(lat, 0.5), "lat_p95_s": pct(lat, 0.95), "lat_max_s": lat[-1] if lat else None,
        "sessions": stats["sessions"], "errors": stats["errors"], "unknown_msgs": stats["unknown"],
        "mb_retrieved": round(stats["octets"] / 1e6, 2), "elapsed_s": round(t_end - t0, 2),
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_msg": None if server_cpu is None or not n else 1000 * server_cpu / n,
        "client_cpu_s": round(own1.user + own1.system - own0.user - own0.system, 2),
        "deliverer_cpu_s": round(deliverer_cpu, 2), "last_error": last_error[0] if last_error else None,
    }


def search(a):
    t_begin = time.monotonic()
    passed, failed, trials = None, None, []
    rate, first = a.rate or a.start_rate, a.first_user
    while len(trials) < a.max_trials:
        res = asyncio.run(trial(a, rate, user_names(first, a.users)))
        first += a.users
        trials.append(res)
        log(a, "rate %g/s: %s (%.1f%% within %gs, p95 %s s, %s errors, server %s ms/msg)" % (
            rate, "pass" if res["passed"] else "FAIL", 100 * res["fraction_within"], a.deadline,
            fmt(res["lat_p95_s"]), res["errors"], fmt(res["server_cpu_ms_per_msg"])))
        if not a.search:
            break
        if res["passed"]:
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            nxt = min(rate * 2, a.max_rate)
            if nxt <= rate:
                break
        elif passed is None:
            nxt = rate / 2
            if nxt < a.min_rate:
                break
        else:
            if failed / passed <= 1 + a.resolution:
                break
            nxt = math.sqrt(passed * failed)
        # The next trial takes about as long as the last one: stay within the budget.
        if time.monotonic() - t_begin + res["elapsed_s"] + a.poll_interval + 3 > a.budget:
            break
        rate = round(nxt)
    best = max((t for t in trials if t["passed"]), key=lambda t: t["rate"], default=None)
    return {
        "scenario": "delivery", "sustained_rate": best["rate"] if best else 0,
        "server_cpu_ms_per_msg": best["server_cpu_ms_per_msg"] if best else None,
        "lat_p95_s": best["lat_p95_s"] if best else None,
        "first_failed_rate": failed, "deadline_s": a.deadline, "quality": a.quality,
        "poll_interval_s": a.poll_interval, "users": a.users, "duration_s": a.duration,
        "fsync": a.fsync, "errors": sum(t["errors"] for t in trials),
        "search_s": round(time.monotonic() - t_begin, 1), "trials": trials,
    }


# --- the drain -----------------------------------------------------------------
def prefill(a, users):
    """--messages-per-user messages per user into new/, as the mail user, then sync."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drop_to(a.mail_user)
            pool, rng = text_pool(a.seed), random.Random("prefill:%d" % a.seed)
            seq = 0
            for u in users:
                root = os.path.join(a.mail_root, u, "Maildir")
                for _ in range(a.messages_per_user):
                    write_one(root, seq, message(seq, u, size_of(a, rng), pool, rng), False)
                    seq += 1
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit("delivery.py: prefill failed")
    os.sync()


async def drain_run(a, users):
    queue = list(reversed(users))
    stats = {"msgs": 0, "octets": 0, "sessions": 0, "errors": 0, "missing": 0}
    last_error = []

    async def client():
        while queue:
            u = queue.pop()
            try:
                seqs, octets = await session(a, u)
            except (OSError, PopError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError, IndexError) as e:
                stats["errors"] += 1
                last_error[:] = ["%s: %s" % (u, e)]
                continue
            stats["sessions"] += 1
            stats["msgs"] += len(seqs)
            stats["octets"] += octets
            if len(seqs) != a.messages_per_user:
                stats["missing"] += 1

    cpu0, own0, t0 = tree_cpu(a.server_pid), os.times(), time.monotonic()
    await asyncio.gather(*(client() for _ in range(a.clients)))
    el = time.monotonic() - t0
    cpu1, own1 = tree_cpu(a.server_pid), os.times()
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return {
        "scenario": "drain-small", "users": len(users), "clients": a.clients,
        "messages": stats["msgs"], "elapsed_s": round(el, 3),
        "msgs_per_s": round(stats["msgs"] / el, 1), "mb_per_s": round(stats["octets"] / el / 1e6, 2),
        "sessions": stats["sessions"], "errors": stats["errors"],
        "short_mailboxes": stats["missing"], "server_cpu_s": cpu,
        "server_cpu_ms_per_msg": None if cpu is None or not stats["msgs"] else
        1000 * cpu / stats["msgs"],
        "client_cpu_s": round(own1.user + own1.system - own0.user - own0.system, 2),
        "last_error": last_error[0] if last_error else None,
    }


# --- main ------------------------------------------------------------------------
def fmt(v):
    return "-" if v is None else "%.3g" % v


def log(a, text):
    if not a.quiet:
        print("delivery.py: " + text, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="POP3 on 127.0.0.1")
    p.add_argument("--mail-root", required=True, help="maildirs are MAIL_ROOT/NAME/Maildir")
    p.add_argument("--first-user", type=int, required=True, help="first user's number (userNNNN)")
    p.add_argument("--users", type=int, default=80, help="users per trial (James: 80)")
    p.add_argument("--password", default="benchpw")
    p.add_argument("--server-pid", type=int, default=0, help="sum CPU over this process tree")
    p.add_argument("--mail-user", default="vmail", help="deliverers write as this user")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-size", type=int, default=1024)
    p.add_argument("--max-size", type=int, default=65536)
    p.add_argument("--timeout", type=float, default=30, help="per command, seconds")
    p.add_argument("--quiet", action="store_true")
    g = p.add_argument_group("delivery")
    g.add_argument("--rate", type=float, default=0, help="one trial at this rate (mail/s)")
    g.add_argument("--search", action="store_true", help="search the highest passing rate")
    g.add_argument("--start-rate", type=float, default=100)
    g.add_argument("--min-rate", type=float, default=5)
    g.add_argument("--max-rate", type=float, default=20000)
    g.add_argument("--resolution", type=float, default=0.2,
                   help="stop when first failure / last pass <= 1 + this")
    g.add_argument("--max-trials", type=int, default=8, help="each uses --users fresh users")
    g.add_argument("--budget", type=float, default=300, help="seconds for the whole search")
    g.add_argument("--duration", type=float, default=15, help="seconds of delivery per trial")
    g.add_argument("--poll-interval", type=float, default=1.0)
    g.add_argument("--deadline", type=float, default=5.0, help="SPECmail2001: 5 s")
    g.add_argument("--quality", type=float, default=0.95, help="SPECmail2001: 95%%")
    g.add_argument("--deliverers", type=int, default=8, help="delivering processes")
    g.add_argument("--fsync", action="store_true", help="deliverers fsync each message")
    d = p.add_argument_group("drain")
    d.add_argument("--drain", action="store_true")
    d.add_argument("--messages-per-user", type=int, default=50)
    d.add_argument("--clients", type=int, default=20, help="postal's rabid: 20")
    a = p.parse_args()
    if a.drain:
        users = user_names(a.first_user, a.users)
        prefill(a, users)
        out = asyncio.run(drain_run(a, users))
        log(a, "drain: %d messages in %.2f s: %.0f msgs/s, %.1f MB/s, server %s ms/msg, %d errors"
            % (out["messages"], out["elapsed_s"], out["msgs_per_s"], out["mb_per_s"],
               fmt(out["server_cpu_ms_per_msg"]), out["errors"]))
    else:
        if not a.search and not a.rate:
            p.error("--rate R or --search")
        out = search(a)
        log(a, "sustained rate %g mail/s (first failure at %s)" % (out["sustained_rate"],
                                                                  fmt(out["first_failed_rate"])))
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A big mailbox that keeps receiving mail, polled (issue 17, part 2).

One user with --messages messages (mkcorpus.py's bigbox: 1.5-6 KB each,
Dovecot-LDA names with ,S= and ,W=) receives one message into new/
(written to tmp/, renamed, as an MDA does) before each poll. A poll is a
leave-on-server client's session: USER, PASS, STAT, UIDL, QUIT (--kind
retr adds RETR of the newest message, which marks it seen; --kind dele
adds RETR and DELE of it). Each server gets its own copy of the maildir,
two untimed polls, then --polls timed ones, then --strace-polls more under
`strace -f -c` for the directory reads (getdents64) and syscalls.

Per poll: wall latency (median, p90), server CPU (the sum of every thread
of the server's process tree, from /proc/*/task/*/schedstat, nanoseconds),
getdents64 calls and syscalls; for fastpop also the cur/ listings counted
by `popctl stats` (maildir_listings). Prints a Markdown table and one JSON
line per server.

  sudo python3 t/bench/poll_delivery.py [--messages 100000] [--polls 30]
       [--kind uidl|retr|dele] [--no-dovecot] [--dovecot-libexec DIR]

Run as root from the source tree after building (FASTPOP_BIN, default
build/bin). Dovecot's pop3 binaries are taken from --dovecot-libexec
(default /usr/lib/dovecot), or, when the package is not installed there,
unpacked from the .deb apt left in /var/cache/apt/archives into the work
directory. Everything listens on 127.0.0.1 and is stopped by pid.
"""
import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from fastpop_harness import BIN, Daemon, free_port, wait_until  # noqa: E402

USER, PASSWORD = "bigbox", "benchpw"


def tree(root):
    """root and all its descendants."""
    parent = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, i = [root], 0
    while i < len(out):
        out += [p for p, pp in parent.items() if pp == out[i]]
        i += 1
    return out


def cpu_ns(root):
    """CPU time of every thread of root's process tree, in nanoseconds."""
    total = 0
    for pid in tree(root):
        for task in glob.glob("/proc/%d/task/*/schedstat" % pid):
            try:
                with open(task) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        if not reply.startswith("+OK"):
            raise RuntimeError("%s: %s" % (text.split()[0], reply))
        return reply

    def multiline(self):
        while b"\r\n.\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk
        body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return body

    def close(self):
        self.sock.close()


def poll(port, kind):
    c = Client(port)
    try:
        c.line()
        c.cmd("USER " + USER)
        c.cmd("PASS " + PASSWORD)
        count = int(c.cmd("STAT").split()[1])
        c.cmd("UIDL")
        lines = c.multiline().count(b"\r\n") + 1
        if lines != count:
            raise RuntimeError("UIDL %d lines, STAT %d" % (lines, count))
        if kind in ("retr", "dele"):
            c.cmd("RETR %d" % count)
            c.multiline()
        if kind == "dele":
            c.cmd("DELE %d" % count)
        c.cmd("QUIT")
        return count
    finally:
        c.close()


class Deliverer:
    """Writes one message into new/ the way an MDA does: tmp/, then rename."""

    def __init__(self, maildir, uid, gid):
        self.maildir, self.uid, self.gid, self.n = maildir, uid, gid, 0

    def __call__(self):
        self.n += 1
        body = b"Subject: poll %d\n\n" % self.n + b"a line of the new message\n" * 40
        unique = "%d.M%dP%d.deliver,S=%d,W=%d" % (time.time(), self.n, os.getpid(), len(body),
                                                  len(body) + body.count(b"\n"))
        tmp = os.path.join(self.maildir, "tmp", unique)
        with open(tmp, "wb") as f:
            f.write(body)
        os.chown(tmp, self.uid, self.gid)
        os.rename(tmp, os.path.join(self.maildir, "new", unique))


def strace_counts(pids, action):
    out = tempfile.mktemp(prefix="fp-poll-strace-")
    args = ["strace", "-f", "-c", "-o", out]
    for p in pids:
        args += ["-p", str(p)]
    tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        action()
    finally:
        time.sleep(0.3)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(60)
    counts = {}
    with open(out) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[-1] != "total" and fields[3].isdigit():
                counts[fields[-1]] = int(fields[3])
    os.unlink(out)
    return counts


def measure(name, port, server_pid, deliver, args, listings=None):
    for _ in range(2):
        deliver()
        poll(port, args.kind)
    lat, cpu = [], []
    before_listings = listings() if listings else None
    for _ in range(args.polls):
        deliver()
        c0, t0 = cpu_ns(server_pid), time.monotonic()
        count = poll(port, args.kind)
        lat.append(time.monotonic() - t0)
        time.sleep(0.05)  # let the server finish the session (log line, close) before reading
        cpu.append(cpu_ns(server_pid) - c0)
    result = {"server": name, "kind": args.kind, "messages": count, "polls": args.polls,
              "latency_p50_ms": statistics.median(lat) * 1e3,
              "latency_p90_ms": sorted(lat)[int(len(lat) * 0.9) - 1] * 1e3,
              "cpu_per_poll_ms": statistics.mean(cpu) / 1e6,
              "cpu_p50_ms": statistics.median(cpu) / 1e6}
    if listings and before_listings is not None:
        result["cur_listings_per_poll"] = (listings() - before_listings) / args.polls
    if shutil.which("strace") and args.strace_polls > 0:
        def traced():
            for _ in range(args.strace_polls):
                deliver()
                poll(port, args.kind)
        counts = strace_counts(tree(server_pid), traced)
        result["getdents64_per_poll"] = counts.get("getdents64", 0) / args.strace_polls
        result["syscalls_per_poll"] = sum(counts.values()) / args.strace_polls
    print(json.dumps(result), flush=True)
    return result


def dovecot_libexec(args, work):
    if os.path.exists(os.path.join(args.dovecot_libexec, "pop3")):
        return args.dovecot_libexec
    debs = glob.glob("/var/cache/apt/archives/dovecot-pop3d_*.deb")
    if not debs:
        return None
    subprocess.run(["dpkg-deb", "-x", debs[0], os.path.join(work, "dcbin")], check=True)
    return os.path.join(work, "dcbin", "usr", "lib", "dovecot")


def start_dovecot(work, maildir, libexec, mail_user):
    dcd = os.path.join(work, "dovecot")
    os.makedirs(os.path.join(dcd, "index"))
    os.makedirs(os.path.join(dcd, "control"))
    for sub in ("index", "control"):
        shutil.chown(os.path.join(dcd, sub), mail_user, mail_user)
    with open(os.path.join(dcd, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
    port = free_port()
    # As compare.sh tunes it: high-performance login, reused pop3 processes,
    # indexes outside the maildir, UIDLs from file names (%f) as fastpop's.
    conf = os.path.join(dcd, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""base_dir = {d}/run
state_dir = {d}/state
instance_name = fastpop-poll-bench
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {d}/dovecot.log
mail_location = maildir:{m}:INDEX={d}/index:CONTROL={d}/control
mail_uid = {u}
mail_gid = {u}
first_valid_uid = 1
pop3_uidl_format = %f
auth_cache_size = 16M
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={u} gid={u} home={d}/home
}}
service pop3-login {{
  executable = {x}/pop3-login
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {p}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
}}
service pop3 {{
  executable = {x}/pop3
  service_count = 1000
  process_min_avail = 1
}}
""".format(d=dcd, m=maildir, u=mail_user, p=port, x=libexec))
    proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        if proc.poll() is not None:
            raise RuntimeError("dovecot exited; see %s/dovecot.log" % dcd)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False
    wait_until(up, timeout=30, what="dovecot to listen")
    return proc, port


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=100000)
    p.add_argument("--polls", type=int, default=30)
    p.add_argument("--strace-polls", type=int, default=5)
    p.add_argument("--kind", choices=("uidl", "retr", "dele"), default="uidl")
    p.add_argument("--no-dovecot", action="store_true")
    p.add_argument("--dovecot-libexec", default="/usr/lib/dovecot")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="fastpop-poll-")
    os.chmod(work, 0o755)
    subprocess.run([sys.executable, os.path.join(HERE, "mkcorpus.py"), "--dir", work,
                    "--users", "0", "--bigbox", str(args.messages), "--password", PASSWORD],
                   check=True, stdout=subprocess.DEVNULL)
    corpus = os.path.join(work, "mail", USER, "Maildir")
    results = []
    d = Daemon(workers=os.cpu_count() or 1, users={USER: PASSWORD})
    dc = None
    try:
        fp_maildir = d.maildir(USER)
        shutil.rmtree(fp_maildir)
        shutil.copytree(corpus, fp_maildir)
        d._own(os.path.dirname(fp_maildir))
        mail_user = pwd.getpwuid(os.stat(fp_maildir).st_uid).pw_name
        uid, gid = os.stat(fp_maildir).st_uid, os.stat(fp_maildir).st_gid
        d.start()

        def fp_listings():
            r = subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "-s",
                                os.path.join(d.run_dir, "control.sock"), "--json", "stats"],
                               capture_output=True, text=True, timeout=30)
            # None from a fastpop without the counter (before issue 17, for comparisons).
            return json.loads(r.stdout).get("maildir_listings", {}).get("cur")
        results.append(measure("fastpop", d.port, d.proc.pid,
                               Deliverer(fp_maildir, uid, gid), args, fp_listings))
        d.stop()
        if not args.no_dovecot:
            libexec = dovecot_libexec(args, work)
            if libexec is None:
                print("dovecot's pop3 is not installed and no .deb is cached: skipped",
                      file=sys.stderr)
            else:
                dc_maildir = os.path.join(work, "dovecot-mail", "Maildir")
                shutil.copytree(corpus, dc_maildir)
                subprocess.run(["chown", "-R", "%d:%d" % (uid, gid),
                                os.path.dirname(dc_maildir)], check=True)
                dc, port = start_dovecot(work, dc_maildir, libexec, mail_user)
                results.append(measure("dovecot", port, dc.pid,
                                       Deliverer(dc_maildir, uid, gid), args))
    finally:
        if dc is not None:
            dc.terminate()
            dc.wait(30)
        d.cleanup()
        if args.keep:
            print("kept", work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print("\n| per poll (%d messages, %s) | %s |" % (results[0]["messages"], args.kind,
                                                   " | ".join(r["server"] for r in results)))
    print("|---|" + "---|" * len(results))
    for key, label in (("latency_p50_ms", "latency p50 (ms)"), ("latency_p90_ms", "latency p90 (ms)"),
                       ("cpu_per_poll_ms", "server CPU, mean (ms)"),
                       ("cpu_p50_ms", "server CPU, median (ms)"),
                       ("getdents64_per_poll", "getdents64 calls"),
                       ("syscalls_per_poll", "syscalls"),
                       ("cur_listings_per_poll", "cur/ listings (popctl stats)")):
        print("| %s | %s |" % (label, " | ".join(
            "%.2f" % r[key] if key in r else "-" for r in results)))
    if len(results) == 2 and results[0]["cpu_per_poll_ms"] > 0:
        print("\nserver CPU per poll, Dovecot / fastpop: %.1fx"
              % (results[1]["cpu_per_poll_ms"] / results[0]["cpu_per_poll_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

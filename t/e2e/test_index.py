"""The mailbox index end to end: a lost or corrupt index changes no UIDL;
a warm login on a big mailbox reads no directory (strace); sessions of
many users in several workers; workers killed while they write; UIDLs
compared with Dovecot's for the same maildir."""
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from fastpop_harness import (BIN, IS_ROOT, MAIL_USER, DaemonTest, Pop3, free_port, main,
                             wait_until)


def session_lists(d, user="alice", password=None):
    """(UIDL lines, LIST lines) of one session, which then QUITs."""
    p = d.connect()
    try:
        r = p.login(user, password or d.users[user])
        assert r.startswith("+OK"), r
        assert p.cmd("UIDL").startswith("+OK")
        uidl = p.multiline().decode("latin-1").splitlines()
        assert p.cmd("LIST").startswith("+OK")
        sizes = p.multiline().decode("latin-1").splitlines()
        p.cmd("QUIT")
        return uidl, sizes
    finally:
        p.close()


def uidl_map(lines):
    return [tuple(line.split(" ", 1)) for line in lines]


def popctl(d, *args):
    return subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "index"] + list(args),
                          capture_output=True, text=True, timeout=60)


def fill(d, user, count, sub="cur", body=b"Subject: x\n\nbody\n"):
    """count small messages written straight into sub/ (faster than deliver)."""
    root = d.maildir(user)
    base = 1600000000
    for i in range(count):
        with open(os.path.join(root, sub, "%d.M%dP1.fill:2,S" % (base + i, i)), "wb") as f:
            f.write(body)
    d._own(root)
    age(root)


def restart(d, config=None):
    """Stop and start d again (optionally with another config)."""
    d.stop()
    d.log_file.close()
    if config is not None:
        d.write_config(config)
    d.start()


def age(root, seconds=30):
    """Backdate new/ and cur/: an old mtime is what a quiet mailbox looks like."""
    t = time.time() - seconds
    for sub in ("new", "cur"):
        os.utime(os.path.join(root, sub), (t, t))


class LostIndex(DaemonTest):
    workers = 2

    def test_deleting_or_corrupting_the_index_changes_no_uidl(self):
        d = self.d
        root = d.maildir("alice")
        for i in range(10):
            d.deliver("alice", "Subject: %d\n\nbody %d\n" % (i, i))
        d.deliver("alice", "x\n", name="1700000100.a name with spaces")
        d.deliver("alice", "y\n", name="1700000101." + "long" * 30, subdir="cur")
        d.deliver("alice", "z\n", name="1700000102.M1P1.h,S=2,W=3:2,S", subdir="cur")
        with open(os.path.join(root, "courierpop3dsizelist"), "w") as f:
            f.write("/2 7 1277387390\n1700000102.M1P1.h,S=2,W=3:2, 3 6:1277387390\n"
                    "1700000100.a name with spaces 4 0:0\n")
        d._own(root)
        d.start()
        first = session_lists(d)
        self.assertEqual(len(first[0]), 13)
        self.assertIn("UID6-1277387390", [u for _, u in uidl_map(first[0])])
        self.assertIn("1700000100.a+20name+20with+20spaces", [u for _, u in uidl_map(first[0])])
        # RETR renames (Seen); the next sessions still agree.
        p = d.connect()
        p.login("alice", "alice-secret")
        p.cmd("RETR 1")
        p.multiline()
        p.cmd("QUIT")
        p.close()
        age(root)
        self.assertEqual(session_lists(d), first)
        self.assertEqual(session_lists(d), first)
        r = popctl(d, "check", "--maildir", root)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok: the index agrees", r.stdout)
        r = popctl(d, "uidl-diff", "--maildir", root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("courierpop3dsizelist version 2, 2 records", r.stdout)
        served = {line.split(" ", 1)[1] for line in first[0]}
        rows = [l.split("\t") for l in r.stdout.splitlines() if not l.startswith("#")]
        self.assertEqual({row[1] for row in rows}, served)
        legacy_rows = [row[:3] for row in rows if row[2] != "-"]
        self.assertIn(["1", "1700000100.a+20name+20with+20spaces",
                       "1700000100.a+20name+20with+20spaces"], legacy_rows)
        self.assertEqual(len(legacy_rows), 2)

        index = os.path.join(d.dir, "state", "index")
        d.stop()
        shutil.rmtree(index)
        restart(d)
        self.assertEqual(session_lists(d), first)
        d.stop()
        with open(os.path.join(index, "data.mdb"), "r+b") as f:
            f.write(os.urandom(8192))
        restart(d)
        self.assertIn("was unreadable; started a new one", d.log())
        self.assertEqual(session_lists(d), first)
        restart(d, d.config_text(d.extra_config + "index = no\n"))
        self.assertEqual(session_lists(d), first)


def strace_counts(pid, action):
    """Per-syscall call counts of pid (and its threads) while action() runs."""
    out = tempfile.mktemp(prefix="fp-strace-")
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def attached():
        with open("/proc/%d/status" % pid) as f:
            return "TracerPid:\t0\n" not in f.read()
    wait_until(attached, what="strace to attach")
    try:
        action()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    counts = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    os.unlink(out)
    return counts


# Network I/O and the event loop scale with the UIDL listing's bytes, not with
# files; the allocator's calls with the bytes copied (and differ under ASan).
NETWORK = {"write", "writev", "sendto", "sendmsg", "read", "recvfrom", "epoll_wait",
           "epoll_ctl", "epoll_pwait"}
MEMORY = {"mmap", "munmap", "madvise", "brk", "mremap"}


@unittest.skipUnless(shutil.which("strace"), "strace is not installed")
class WarmLogin(DaemonTest):
    workers = 1
    users = {"big": "big-secret", "small": "small-secret"}

    def measure(self, user, count):
        d = self.d
        session_lists(d, user)          # cold: reads every file once
        uidl, _ = session_lists(d, user)  # warm already: the dirs were old when read
        self.assertEqual(len(uidl), count)

        def warm():
            p = d.connect()
            p.login(user, d.users[user])
            self.assertTrue(p.cmd("STAT").startswith("+OK %d " % count))
            self.assertTrue(p.cmd("UIDL").startswith("+OK"))
            self.assertEqual(len(p.multiline().splitlines()), count)
            p.cmd("QUIT")
            p.close()
        return strace_counts(d.workers_pids()[0], warm)

    def test_warm_login_reads_no_directory(self):
        fill(self.d, "big", 20000)
        fill(self.d, "small", 200)
        self.d.start()
        big = self.measure("big", 20000)
        small = self.measure("small", 200)
        print("warm login syscalls, 20000 messages:", big)
        print("warm login syscalls, 200 messages:  ", small)
        self.assertNotIn("getdents64", big)
        self.assertNotIn("getdents", big)
        files_big = {k: v for k, v in big.items() if k not in NETWORK | MEMORY}
        files_small = {k: v for k, v in small.items() if k not in NETWORK | MEMORY}
        self.assertLess(sum(v for k, v in big.items() if k in MEMORY), 60, big)
        # Bounded, and the same whatever the mailbox size: two stats.
        self.assertLess(sum(files_big.values()), 20, files_big)
        self.assertLessEqual(abs(sum(files_big.values()) - sum(files_small.values())), 2,
                             (files_big, files_small))
        self.assertEqual(files_big.get("newfstatat", 0) + files_big.get("stat", 0) +
                         files_big.get("statx", 0), 2, files_big)
        self.assertLessEqual(files_big.get("openat", 0), 2, files_big)


class ConcurrentUsers(DaemonTest):
    workers = 4
    users = {"u%d" % i: "pw%d" % i for i in range(8)}

    def test_sessions_of_many_users_in_several_workers(self):
        d = self.d
        d.start()
        errors = []

        def run(user):
            try:
                for i in range(12):
                    d.deliver(user, "Subject: %s %d\n\nhello\n" % (user, i))
                    p = d.connect()
                    p.login(user, d.users[user])
                    assert p.cmd("UIDL").startswith("+OK")
                    lines = p.multiline().splitlines()
                    if len(lines) > 3:
                        assert p.cmd("DELE 1").startswith("+OK")
                    assert p.cmd("QUIT").startswith("+OK")
                    p.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("%s: %r" % (user, e))

        threads = [threading.Thread(target=run, args=(u,)) for u in d.users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        for user in d.users:
            root = d.maildir(user)
            uidl, _ = session_lists(d, user)
            want = sorted(n.split(":")[0] for n in os.listdir(os.path.join(root, "cur")))
            self.assertEqual(sorted(u for _, u in uidl_map(uidl)), want)
            r = popctl(d, "check", "--maildir", root)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class KilledWriter(DaemonTest):
    workers = 2
    users = {"k%d" % i: "pw%d" % i for i in range(4)}

    def test_worker_killed_during_index_writes(self):
        d = self.d
        for user in d.users:
            fill(d, user, 3000)   # each write of the record copies ~200 KB
        d.start()
        stop = threading.Event()

        def churn(user):
            while not stop.is_set():
                p = None
                try:
                    d.deliver(user, "Subject: churn\n\nx\n")
                    p = d.connect(timeout=5)
                    p.login(user, d.users[user])
                    p.cmd("UIDL")
                    p.multiline()
                    p.cmd("QUIT")
                except (OSError, EOFError, AssertionError):
                    pass  # our worker was killed under us
                finally:
                    if p is not None:
                        p.close()

        threads = [threading.Thread(target=churn, args=(u,)) for u in d.users]
        for t in threads:
            t.start()
        kills = 0
        try:
            for _ in range(8):
                time.sleep(random.uniform(0.2, 0.5))
                pids = d.workers_pids()
                if pids:
                    os.kill(random.choice(pids), signal.SIGKILL)
                    kills += 1
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertGreater(kills, 4)
        wait_until(lambda: len(d.workers_pids()) == self.workers, timeout=30,
                   what="workers respawned")
        for user in d.users:
            root = d.maildir(user)
            uidl, _ = session_lists(d, user)
            want = sorted(n.split(":")[0] for n in os.listdir(os.path.join(root, "cur")) +
                          os.listdir(os.path.join(root, "new")))
            self.assertEqual(sorted(u for _, u in uidl_map(uidl)), want)
            r = popctl(d, "check", "--maildir", root)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("index unusable", d.log())


DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


class Dovecot:
    """A private dovecot on loopback serving one user from one maildir."""

    def __init__(self, maildir, user, password, uidl_format="%08Xu%08Xv"):
        self.dir = tempfile.mkdtemp(prefix="fp-dovecot-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (user, password))
        conf = os.path.join(self.dir, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mu} gid={mu} home={d}/home mail=maildir:{m}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {p}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
pop3_uidl_format = {f}
""".format(d=self.dir, m=maildir, p=self.port, mu=MAIL_USER, f=uidl_format))
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            try:
                Pop3(self.port, timeout=2).close()
                return True
            except OSError:
                return False
        wait_until(up, timeout=20, what="dovecot to listen")

    def uidl(self, user, password):
        p = Pop3(self.port)
        try:
            r = p.login(user, password)
            assert r.startswith("+OK"), r
            assert p.cmd("UIDL").startswith("+OK")
            lines = p.multiline().decode("latin-1").splitlines()
            p.cmd("QUIT")
            return lines
        finally:
            p.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(IS_ROOT and os.path.exists(DOVECOT), "needs root and dovecot-pop3d")
class DovecotUidls(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def dovecot_uidl(self, user):
        dc = Dovecot(self.d.maildir(user), user, self.d.users[user])
        try:
            return dc.uidl(user, self.d.users[user])
        finally:
            dc.stop()

    def test_same_uidls_as_dovecot(self):
        d = self.d
        for i in range(4):
            d.deliver("alice", "Subject: %d\n\nbody\n" % i, subdir="cur")
        d.deliver("alice", "Subject: new\n\nbody\n")
        d.deliver("alice", "s\n", name="%d.M9P9.host,S=2:2,S" % int(time.time()), subdir="cur")
        # Dovecot writes dovecot-uidlist (v3) at its first login; fastpop reads it.
        served = self.dovecot_uidl("alice")
        self.assertTrue(os.path.exists(os.path.join(d.maildir("alice"), "dovecot-uidlist")))
        d._own(d.maildir("alice"))
        d.start()
        self.assertEqual(session_lists(d, "alice")[0], served)

        # A v1 list (Dovecot 1.0, courierimapuiddb layout) with P/O-free
        # records, and a migrated v3 with O and P: fastpop first, then Dovecot.
        root = d.maildir("bob")
        names = ["1600000001.a:2,S", "1600000002.b b:2,", "1600000003.c:2,", "1600000004.d:2,"]
        for n in names:
            with open(os.path.join(root, "cur", n), "w") as f:
                f.write("Subject: %s\n\nbody\n" % n)
        with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
            f.write("3 V1277387390 N20\n"
                    "10 O2 PUID10-1277387390 :1600000003.c:2,\n"
                    "11 O1 P :1600000004.d\n"
                    "12 PUID3 :1600000002.b b\n"
                    "15 :1600000001.a:2,S\n")
        d._own(root)
        ours = session_lists(d, "bob")[0]
        d.stop()
        self.assertEqual(self.dovecot_uidl("bob"), ours)
        self.assertEqual([u.split(" ", 1)[1] for u in ours],
                         ["1600000004.d", "UID10-1277387390", "UID3", "0000000f4c23627e"])

        os.unlink(os.path.join(root, "dovecot-uidlist"))
        for n in os.listdir(root):
            if n.startswith("dovecot"):
                os.unlink(os.path.join(root, n))
        with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
            f.write("1 1275660208 5\n1 1600000001.a\n2 1600000002.b b\n"
                    "3 1600000003.c:2,\n4 1600000004.d\n")
        d._own(root)
        shutil.rmtree(os.path.join(d.dir, "state", "index"))
        restart(d)
        ours = session_lists(d, "bob")[0]
        d.stop()
        self.assertEqual(self.dovecot_uidl("bob"), ours)
        self.assertEqual(ours[0], "1 000000014c0907b0")


if __name__ == "__main__":
    main()

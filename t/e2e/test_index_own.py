"""The index absorbs fastpop's own changes (issue 17, part 2): on a
10,000-message mailbox receiving one message between polls, polled by a
leave-on-server client (STAT, UIDL), one that RETRs with mark_seen and one
that DELEs, no poll after the first lists cur/ (counted by
`popctl stats` and by strace's getdents64); another program's rename and
unlink in cur/ in the same second as fastpop's own change are seen at the
next login, and even in the very same mtime tick by the first login
index_recheck after fastpop's change."""
import json
import os
import shutil
import subprocess
import time
import unittest

from fastpop_harness import BIN, DaemonTest, main
from test_index import fill, strace_counts

COUNT = 10000


def listings(d):
    """maildir_listings{dir} since start: (new/ reads, cur/ listings)."""
    r = subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "-s",
                        os.path.join(d.run_dir, "control.sock"), "--json", "stats"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)["maildir_listings"]
    return doc["new"], doc["cur"]


def cur_uniques(root):
    return sorted(n.split(":")[0] for n in os.listdir(os.path.join(root, "cur"))
                  if not n.startswith("."))


class Poller:
    """One POP3 session of a given kind; returns the UIDLs it was shown."""

    def __init__(self, d, user):
        self.d, self.user = d, user

    def session(self, kind):
        p = self.d.connect(timeout=60)
        try:
            r = p.login(self.user, self.d.users[self.user])
            assert r.startswith("+OK"), r
            stat = p.cmd("STAT")
            assert stat.startswith("+OK"), stat
            assert p.cmd("UIDL").startswith("+OK")
            uidls = [line.split(" ", 1)[1]
                     for line in p.multiline().decode("latin-1").splitlines()]
            assert int(stat.split()[1]) == len(uidls), (stat, len(uidls))
            last = len(uidls)
            if kind in ("retr", "dele"):
                assert p.cmd("RETR %d" % last).startswith("+OK")
                p.multiline()
            if kind == "dele":
                assert p.cmd("DELE %d" % last).startswith("+OK")
            assert p.cmd("QUIT").startswith("+OK")
            return uidls
        finally:
            p.close()


class OwnChangesBigMailbox(DaemonTest):
    workers = 1
    users = {"big": "big-secret"}

    def test_polls_with_deliveries_list_no_cur(self):
        d = self.d
        fill(d, "big", COUNT)
        d.start()
        root = d.maildir("big")
        poller = Poller(d, "big")
        self.assertEqual(len(poller.session("uidl")), COUNT)   # cold: cur/ listed once
        self.assertEqual(listings(d)[1], 1)

        rounds = 12
        shown = {}

        def polls():
            for i in range(rounds):
                d.deliver("big", "Subject: poll %d\n\nnew mail\n" % i)
                kind = ("uidl", "retr", "dele")[i % 3]
                shown[i] = (kind, poller.session(kind), cur_uniques(root))
        calls = (strace_counts(d.workers_pids()[0], polls) if shutil.which("strace")
                 else None)
        new_reads, cur_listings = listings(d)
        print("%d polls with a delivery each: cur/ listings %d, new/ reads %d, syscalls %s"
              % (rounds, cur_listings - 1, new_reads, calls))
        for i, (kind, uidls, after) in shown.items():
            # What the client saw is what the maildir held (minus its own DELE).
            held = after + ([uidls[-1]] if kind == "dele" else [])
            self.assertEqual(sorted(uidls), sorted(held), "poll %d (%s)" % (i, kind))
        self.assertEqual(cur_listings, 1, "a poll listed cur/ although only fastpop changed it")
        if calls is not None:
            # new/ holds one message at a time: a couple of getdents64 per poll, while
            # one listing of 10,000 names in cur/ takes dozens.
            self.assertLessEqual(calls.get("getdents64", 0), 4 * rounds, calls)
        # What is left is served from the index, and agrees with the disk.
        final = poller.session("uidl")
        self.assertEqual(sorted(final), cur_uniques(root))
        r = subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "index", "check",
                            "--maildir", root], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ok: the index agrees", r.stdout)

    def test_foreign_rename_and_unlink_in_the_same_second_are_seen(self):
        d = self.d
        fill(d, "big", 2000)
        d.start()
        root = d.maildir("big")
        cur = os.path.join(root, "cur")
        poller = Poller(d, "big")
        poller.session("uidl")
        for attempt in range(5):
            # Our own change: a delivery moved in, and a DELE'd message unlinked at QUIT.
            d.deliver("big", "Subject: ours\n\nx\n")
            poller.session("dele")
            ours = os.stat(cur).st_mtime_ns
            victim, renamed = sorted(os.listdir(cur))[attempt * 2:attempt * 2 + 2]
            os.unlink(os.path.join(cur, victim))
            os.rename(os.path.join(cur, renamed), os.path.join(cur, renamed + "F"))
            theirs = os.stat(cur).st_mtime_ns
            if theirs // 10**9 == ours // 10**9:
                break
        self.assertEqual(theirs // 10**9, ours // 10**9, "never within one second")
        before = listings(d)[1]
        uidls = poller.session("uidl")
        self.assertEqual(sorted(uidls), cur_uniques(root))
        self.assertNotIn(victim.split(":")[0], uidls)
        self.assertEqual(listings(d)[1], before + 1)
        # The renamed message is served under its new name.
        p = d.connect()
        p.login("big", d.users["big"])
        n = uidls.index(renamed.split(":")[0]) + 1
        self.assertTrue(p.cmd("RETR %d" % n).startswith("+OK"))
        p.multiline()
        p.cmd("QUIT")
        p.close()


class OwnChangesSameTick(DaemonTest):
    """Another program's change in the very mtime tick of ours (made so by
    setting cur/'s mtime back): seen by the first login index_recheck later."""
    workers = 1
    users = {"box": "box-secret"}
    extra_config = "index_recheck = 2s\n"

    def test_same_tick_change_seen_after_index_recheck(self):
        d = self.d
        fill(d, "box", 50)
        d.start()
        root = d.maildir("box")
        cur = os.path.join(root, "cur")
        poller = Poller(d, "box")
        poller.session("uidl")
        d.deliver("box", "Subject: ours\n\nx\n")
        start = time.time()
        poller.session("uidl")          # moves it in: our own change to cur/
        st = os.stat(cur)
        victim = sorted(os.listdir(cur))[0]
        os.unlink(os.path.join(cur, victim))
        with open(os.path.join(cur, "1700000999.M1P1.restored:2,S"), "wb") as f:
            f.write(b"Subject: put back by a tool\n\nx\n")
        d._own(root)
        os.utime(cur, ns=(st.st_atime_ns, st.st_mtime_ns))
        # index_recheck after our change at the latest (the login's clock is whole seconds).
        time.sleep(max(0.0, start + 3.1 - time.time()))
        uidls = poller.session("uidl")
        self.assertEqual(sorted(uidls), cur_uniques(root))
        self.assertNotIn(victim.split(":")[0], uidls)
        self.assertIn("1700000999.M1P1.restored", uidls)


if __name__ == "__main__":
    main()

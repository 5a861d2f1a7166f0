"""Crash consistency (issue 13): real POP3 sessions (UIDL, RETR with
mark_seen, DELE, QUIT) against a mailbox that keeps receiving mail, while a
worker, the auth helper or the master is killed with SIGKILL at random
instants. After every kill a checker compares the maildir with a ledger:

  - no message that was not DELE'd is gone (nothing lost);
  - no message whose QUIT was answered +OK is back (nothing resurrected);
  - no message exists twice (a Seen rename is atomic);
  - every UIDL a client saw for a message stays the same;
  - the mailbox is not left locked, and the next login sees STAT, LIST and
    UIDL that agree with each other and with the files.

Deletions whose QUIT was sent but not answered may or may not have happened
(the kill may land inside UPDATE); the ledger allows both. The index is on,
so kills land inside index writes too: a torn or stale index must never
change what a client sees.

Rounds are bounded by count and by time (FASTPOP_CRASH_SECONDS per kind,
default 30); each kind must reach a minimum number of kills to pass.
"""
import grp
import os
import pwd
import random
import re
import signal
import socket
import threading
import time

from fastpop_harness import (IS_ROOT, MAIL_GROUP, MAIL_USER, DaemonTest, Pop3, children_of,
                             main, wait_until)

USER = "alice"
PASSWORD = "alice-secret"
SECONDS = float(os.environ.get("FASTPOP_CRASH_SECONDS", "30"))
UNIQUE = re.compile(r"^(\d+\.M\d+P\d+\.crash)")


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = set()      # unique names that reached new/
        self.gone = set()           # DELE'd, QUIT answered +OK
        self.maybe_gone = set()     # DELE'd, QUIT sent, no answer

    def saw(self, uidl):
        """Names are in UIDL's verbatim form: a message's UIDL is its unique
        name, before and after the kill, indexed or not."""
        with self.lock:
            known = uidl in self.delivered
        assert known, "a UIDL that is no delivered message's name: %r" % uidl


class Deliverer(threading.Thread):
    """An MTA: write into tmp/, rename into new/, a few messages a second."""

    def __init__(self, daemon, ledger):
        super().__init__(daemon=True)
        self.d, self.ledger = daemon, ledger
        self.stop_flag = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.seq = 0
        self.root = None
        self.error = None
        self.uid = pwd.getpwnam(MAIL_USER).pw_uid
        self.gid = grp.getgrnam(MAIL_GROUP).gr_gid

    def deliver_one(self):
        self.seq += 1
        unique = "%d.M%dP%d.crash" % (1700000000 + self.seq, self.seq, os.getpid())
        body = "Subject: %d\r\n\r\n%s\r\n" % (self.seq, "x" * (self.seq % 700))
        root = self.d.maildir(USER) if self.root is None else self.root
        self.root = root
        tmp = os.path.join(root, "tmp", unique)
        with open(tmp, "w") as f:
            f.write(body)
        if IS_ROOT:
            os.chown(tmp, self.uid, self.gid)
        # In the ledger first: a session may list it the instant it is in new/.
        with self.ledger.lock:
            self.ledger.delivered.add(unique)
        os.rename(tmp, os.path.join(root, "new", unique))

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if self.paused.is_set():
                    self.idle.set()
                    time.sleep(0.005)
                    continue
                self.idle.clear()
                self.deliver_one()
                time.sleep(0.02)
        except Exception as e:   # reported by pause(), the test's thread
            self.error = e
            self.idle.set()

    def pause(self):
        self.paused.set()
        wait_until(self.idle.is_set, 5, what="the deliverer to pause")
        if self.error is not None:
            raise AssertionError("the deliverer failed: %r" % self.error)

    def resume(self):
        self.paused.clear()


def files_by_unique(root):
    """{unique name: [paths]} of every message file in new/ and cur/."""
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(root, sub)):
            m = UNIQUE.match(name)
            if m:
                found.setdefault(m.group(1), []).append(sub + "/" + name)
    return found


class CrashConsistency(DaemonTest):
    workers = 1
    extra_config = "mark_seen = yes\nindex = yes\n"

    def setUp(self):
        super().setUp()
        self.ledger = Ledger()
        self.root = self.d.maildir(USER)
        self.deliverer = Deliverer(self.d, self.ledger)
        for _ in range(150):
            self.deliverer.deliver_one()
        self.d.start()
        self.deliverer.start()
        self.addCleanup(self.deliverer.stop_flag.set)
        seed = int(os.environ.get("FASTPOP_CRASH_SEED", "0")) or random.randrange(1 << 30)
        print("FASTPOP_CRASH_SEED=%d" % seed)
        self.rng = random.Random(seed)

    # --- one client session, cut short wherever the kill lands ---------------
    STAGES = ("greeted", "pass-sent", "listed", "quit-sent")

    def session(self, reached=None):
        """Returns 'quit' (QUIT answered), 'cut' or 'busy'. reached: {stage:
        Event} set as the session gets there, for the killer to aim at."""
        reached = reached or {s: threading.Event() for s in self.STAGES}
        dele = []
        quit_sent = False
        try:
            p = Pop3(self.d.port, timeout=5)
            try:
                if not p.line().startswith("+OK"):
                    return "cut"
                reached["greeted"].set()
                r = p.cmd("USER " + USER)
                p.send("PASS " + PASSWORD + "\r\n")
                reached["pass-sent"].set()
                r = p.line()
                if r.startswith("-ERR [IN-USE]") or r.startswith("-ERR [SYS/TEMP]"):
                    return "busy"
                if not r.startswith("+OK"):
                    return "cut"
                r = p.cmd("UIDL")
                if not r.startswith("+OK"):
                    return "cut"
                listing = []
                for line in p.multiline().decode().split("\r\n")[:-1]:
                    num, uidl = line.split(" ", 1)
                    self.ledger.saw(uidl)
                    listing.append((int(num), uidl))
                reached["listed"].set()
                for num, uidl in listing:
                    roll = self.rng.random()
                    if roll < 0.05:
                        if not p.cmd("RETR %d" % num).startswith("+OK"):
                            return "cut"
                        p.multiline()
                    elif roll < 0.15:
                        if not p.cmd("DELE %d" % num).startswith("+OK"):
                            return "cut"
                        dele.append(uidl)
                with self.ledger.lock:
                    self.ledger.maybe_gone.update(dele)
                quit_sent = True
                p.send("QUIT\r\n")
                reached["quit-sent"].set()
                r = p.line()
                if r.startswith("+OK"):
                    with self.ledger.lock:
                        self.ledger.gone.update(dele)
                        self.ledger.maybe_gone.difference_update(dele)
                    return "quit"
                return "cut"
            finally:
                p.close()
        except (OSError, EOFError, ValueError):
            return "cut"
        finally:
            if not quit_sent:
                # The session died before QUIT: nothing it marked may be gone.
                with self.ledger.lock:
                    self.ledger.maybe_gone.difference_update(
                        set(dele) - self.ledger.gone)

    # --- the checker -----------------------------------------------------------
    def check(self, what):
        self.deliverer.pause()
        try:
            present = files_by_unique(self.root)
            with self.ledger.lock:
                delivered = set(self.ledger.delivered)
                gone, maybe = set(self.ledger.gone), set(self.ledger.maybe_gone)
            twice = {u: p for u, p in present.items() if len(p) > 1}
            self.assertEqual(twice, {}, "%s: messages on disk twice" % what)
            lost = delivered - gone - maybe - set(present)
            self.assertEqual(lost, set(), "%s: messages lost" % what)
            back = gone & set(present)
            self.assertEqual(back, set(), "%s: deleted messages back" % what)
            self.consistent_login(set(present), what)
            # What an unanswered QUIT did is settled now.
            with self.ledger.lock:
                self.ledger.gone |= self.ledger.maybe_gone - set(present)
                self.ledger.maybe_gone.clear()
        finally:
            self.deliverer.resume()

    def consistent_login(self, present, what):
        """The next login is not refused as locked, and what it lists is the maildir."""
        def login():
            p = Pop3(self.d.port, timeout=5)
            try:
                p.line()
                p.cmd("USER " + USER)
                r = p.cmd("PASS " + PASSWORD)
                if not r.startswith("+OK"):
                    p.close()
                    return None
                return p
            except (OSError, EOFError):
                p.close()
                return None
        p = wait_until(login, 15, what="%s: a login after the kill (a lock left behind?)" % what)
        try:
            stat = p.cmd("STAT").split()
            self.assertEqual(stat[0], "+OK")
            self.assertTrue(p.cmd("LIST").startswith("+OK"))
            sizes = [l.split() for l in p.multiline().decode().split("\r\n")[:-1]]
            self.assertTrue(p.cmd("UIDL").startswith("+OK"))
            uidls = [l.split() for l in p.multiline().decode().split("\r\n")[:-1]]
            self.assertEqual(int(stat[1]), len(sizes), "%s: STAT and LIST disagree" % what)
            self.assertEqual(int(stat[2]), sum(int(s) for _, s in sizes),
                             "%s: STAT size is not the sum of LIST" % what)
            self.assertEqual([n for n, _ in sizes], [n for n, _ in uidls])
            listed = {u for _, u in uidls}
            self.assertEqual(len(listed), len(uidls), "%s: a UIDL twice" % what)
            self.assertEqual(listed, present, "%s: the listing is not the maildir" % what)
            for _, u in uidls:
                self.ledger.saw(u)
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        finally:
            p.close()

    # --- the killers ---------------------------------------------------------
    def kill_during_sessions(self, victim, rounds, minimum):
        kinds = {"quit": 0, "cut": 0, "busy": 0}
        # SECONDS is the budget; a loaded machine gets up to four times it to reach
        # the minimum, so the test bounds its time without timing the machine.
        deadline = time.monotonic() + SECONDS
        hard_deadline = time.monotonic() + 4 * SECONDS
        kills = 0
        span = 0.05   # how long a round's sessions take, learnt as we go
        while kills < rounds and (time.monotonic() < deadline or
                                  (kills < minimum and time.monotonic() < hard_deadline)):
            results = []
            reached = {s: threading.Event() for s in self.STAGES}
            clients = [threading.Thread(target=lambda r=r: results.append(self.session(r)))
                       for r in (reached, None)]
            started = time.monotonic()
            for t in clients:
                t.start()
            # Aim at a stage of the first session (inside the login and its index
            # sync, RETR/DELE, UPDATE), or at any instant of the round.
            aim = self.rng.choice(self.STAGES + ("anytime",))
            if aim != "anytime":
                reached[aim].wait(5)
                time.sleep(self.rng.uniform(0.0, 0.004))
            else:
                time.sleep(self.rng.uniform(0.0, span))
            victim()
            kills += 1
            for t in clients:
                t.join(30)
                self.assertFalse(t.is_alive(), "a client hung after a kill")
            if all(r != "cut" for r in results):
                span = 0.8 * span + 0.2 * (time.monotonic() - started)
            for r in results:
                kinds[r] += 1
            self.check("after kill %d" % kills)
        self.assertGreaterEqual(kills, minimum, "too few kills in %.0f s" % (4 * SECONDS))
        print("%d kills: sessions %s" % (kills, kinds))
        self.assertGreater(kinds["quit"], 0, kinds)
        return kinds

    def kill_worker(self):
        workers = wait_until(self.d.workers_pids, 15, what="a worker")
        os.kill(self.rng.choice(workers), signal.SIGKILL)

    def test_kill_worker(self):
        kinds = self.kill_during_sessions(self.kill_worker, 200, 30)
        # The kills must have landed inside sessions, not only between them.
        self.assertGreater(kinds["cut"], 0, kinds)

    def test_kill_helper(self):
        def kill_helper():
            helpers = wait_until(self.d.helper_pids, 15, what="the helper")
            os.kill(helpers[0], signal.SIGKILL)
        self.kill_during_sessions(kill_helper, 60, 10)

    def test_kill_master(self):
        def kill_master():
            old = [self.d.pid] + children_of(self.d.pid)
            os.kill(self.d.pid, signal.SIGKILL)
            self.d.proc.wait(10)
            # Every process of the old instance goes with it (no orphaned helper,
            # no worker holding the port), so a new one can start.
            wait_until(lambda: not any(os.path.exists("/proc/%d" % p) and
                                       not open("/proc/%d/stat" % p).read().split()[2] == "Z"
                                       for p in old), 15,
                       what="the old instance's processes to exit")
            self.d.log_file.close()
            self.d.start()
        self.kill_during_sessions(kill_master, 25, 5)


if __name__ == "__main__":
    main()

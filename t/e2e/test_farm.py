"""The farm of issue 15 under traffic (fixture: farm_fixture.py, the same real
nginx, slapd, router and three backends as test_router.py).

Checked: fetchmail works through nginx over POP3S (995) and STLS; a user moved
between hosts (mailHost changed in LDAP, there and back) while mail is being
delivered and DELE'd sees exactly her messages on every host, with stable
UIDLs, although the host she comes back to has a stale index; and nothing is
lost or fetched again after its deletion was committed when a backend is
SIGKILLed while clients download and DELE through nginx (the invariant is
written out in test_3's docstring).
"""
import grp
import os
import poplib
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from fastpop_harness import MAIL_GROUP, MAIL_USER, children_of, main, wait_until
from farm_fixture import CLIENT_IP, USERS, ClientPOP3, Farm

SEQ_IN_NAME = re.compile(r"\.farm-([a-z]+)-(\d+)(?::|$)")
SEQ_IN_TEXT = re.compile(rb"^X-Seq: ([a-z]+)-(\d+)\r?$", re.M)
SESSION_TIMEOUT = 15          # seconds for one POP3 reply (poplib's socket timeout)
CLIENT_LOOP_LIMIT = 400       # sessions a client thread runs at most
PHASE_DEADLINE = 40.0         # generous: a route change takes the cache TTL plus a check
CATCH_UP_DEADLINE = 90.0      # after the kill: stale lock (6 s) + route move + downloads


def message(user, k):
    return ("X-Seq: %s-%d\r\nSubject: farm %s %d\r\n\r\nbody of %s's message %d\r\n" %
            (user, k, user, k, user, k)).encode()


class FarmTraffic(Farm):
    # A SIGKILLed host's locks free after 6 s here (the default is a minute).
    backend_extra = "mailbox_lock_stale = 6s\n"

    # --- delivery and the maildir's contents ---------------------------------
    def deliver_seq(self, user, k):
        """Message k for user, the way an MDA delivers (tmp/, then rename into new/)."""
        root = os.path.join(self.shared, user, "Maildir")
        name = "%d.M%dP%d.farm-%s-%d" % (int(time.time()), k, os.getpid(), user, k)
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(message(user, k))
        os.chown(tmp, pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid)
        os.rename(tmp, os.path.join(root, "new", name))

    def in_maildir(self, user):
        """Message number -> how many files carry it, in new/ and cur/ now."""
        count = {}
        for name in self.router_host.messages(user):
            m = SEQ_IN_NAME.search(name)
            if m and m.group(1) == user:
                k = int(m.group(2))
                count[k] = count.get(k, 0) + 1
        return count

    def deliverer(self, users, n, interval, delivered, stop):
        """Deliver messages 0..n-1 to each user; delivered[(user, k)] = time it was done."""
        for k in range(n):
            for user in users:
                if stop.is_set():
                    return
                self.deliver_seq(user, k)
                delivered[(user, k)] = time.monotonic()
            time.sleep(interval)

    # --- one POP3 session through nginx ---------------------------------------
    def session(self, user, dele=lambda k: True, retr=True, pause=0.0, live=None):
        """Log in through nginx, UIDL, RETR (or TOP 0) every message, DELE those
        dele(k) picks, QUIT. A record of what happened, whatever happened; while
        it runs, live[user] is the record (for the test to act mid-session)."""
        rec = {"t0": time.monotonic(), "login": False, "seen": {}, "got": {},
               "deleted": [], "quit_ok": False, "t_quit": None, "error": None,
               "backend": None}
        before = self._logins_of(user)
        try:
            p = ClientPOP3("127.0.0.1", self.nginx.port, timeout=SESSION_TIMEOUT)
        except OSError as e:
            rec["error"] = "connect: %s" % e
            return rec
        try:
            p.user(user)
            p.pass_(USERS[user][0])
            rec["login"] = True
            after = self._logins_of(user)
            rec["backend"] = next((b for b in after if after[b] > before[b]), None)
            if live is not None:
                live[user] = rec
            for line in p.uidl()[1]:
                num, uidl = line.decode().split()
                body = (p.retr(int(num)) if retr else p.top(int(num), 0))[1]
                text = b"\r\n".join(body) + b"\r\n"
                m = SEQ_IN_TEXT.search(text)
                if m is None or m.group(1).decode() != user:
                    raise AssertionError("message %s of %s is not ours: %r" % (num, user, text))
                k = int(m.group(2))
                rec["seen"][k] = uidl
                if retr:
                    rec["got"][k] = text == message(user, k)
                if dele(k):
                    p.dele(int(num))
                    rec["deleted"].append(k)
                if pause:
                    time.sleep(pause)
            rec["quit_ok"] = p.quit().startswith(b"+OK")
            rec["t_quit"] = time.monotonic()
        except (poplib.error_proto, OSError, EOFError) as e:
            rec["error"] = str(e)
        finally:
            p.close()
            if live is not None:
                live[user] = None
        return rec

    def _logins_of(self, user):
        return {name: d.log().count("login user=%s ip=%s " % (user, CLIENT_IP))
                for name, d in self.backends.items()}

    def client(self, user, records, stop, **kw):
        for _ in range(CLIENT_LOOP_LIMIT):
            if stop.is_set():
                return
            records.append(self.session(user, **kw))
            time.sleep(0.1)

    # --- the ledger's rules --------------------------------------------------
    def committed(self, records):
        """Message -> when the QUIT that applied its DELE was answered +OK."""
        done = {}
        for r in records:
            if r["quit_ok"]:
                for k in r["deleted"]:
                    done.setdefault(k, r["t_quit"])
        return done

    def check_no_resurrection_and_stable_uidls(self, user, records):
        committed = self.committed(records)
        uidl_of, seq_of = {}, {}
        for r in records:
            for k, uidl in r["seen"].items():
                self.assertFalse(k in committed and r["t0"] > committed[k],
                                 "%s's message %d was listed again in a session begun after "
                                 "the QUIT that deleted it (on %s)" % (user, k, r["backend"]))
                self.assertEqual(uidl_of.setdefault(k, uidl), uidl,
                                 "%s's message %d changed its UIDL (on %s)" %
                                 (user, k, r["backend"]))
                self.assertEqual(seq_of.setdefault(uidl, k), k,
                                 "UIDL %s names two messages of %s" % (uidl, user))
            for k, same in r["got"].items():
                self.assertTrue(same, "%s's message %d came back altered" % (user, k))

    # --- the tests -----------------------------------------------------------
    def test_1_fetchmail_through_nginx_pop3s_and_stls(self):
        if shutil.which("fetchmail") is None:
            self.skipTest("fetchmail is not installed")
        pop2 = self.backends["pop2"]
        for how, port, tls in (("pop3s", self.nginx.tls_port, "ssl"),
                               ("stls", self.nginx.stls_port, "sslproto tls1.2+")):
            subjects = ["fetchmail %s %d" % (how, i) for i in range(3)]
            for s in subjects:
                self.router_host.deliver("bert", "Subject: %s\r\n\r\nbody\r\n" % s)
            home = tempfile.mkdtemp(prefix="fastpop-fetchmail-")
            self.addCleanup(shutil.rmtree, home, True)
            out = os.path.join(home, "out")
            os.mkdir(out)
            rc = os.path.join(home, "fetchmailrc")
            with open(rc, "w") as f:
                f.write('poll 127.0.0.1 service %d protocol pop3 timeout 30\n'
                        '  user "bert" there with password "bert-pass" is "root" here\n'
                        '  %s sslcertck sslcertfile "%s" sslcommonname pop.example.test\n'
                        '  fetchall nokeep\n'
                        '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (port, tls, self.certs.ca,
                                                                    out))
            os.chmod(rc, 0o600)
            logins = pop2.log().count("login user=bert ip=127.0.0.1 ")
            r = subprocess.run(["fetchmail", "-v", "-f", rc, "--nosyslog", "--pidfile",
                                os.path.join(home, "pid"), "-i", os.path.join(home, "ids")],
                               env=dict(os.environ, FETCHMAILHOME=home, HOME=home),
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, "%s\n%s\n%s" % (r.stdout[-3000:], r.stderr[-2000:],
                                                              self.nginx.read_log()))
            got = []
            for name in os.listdir(out):
                with open(os.path.join(out, name), "rb") as f:
                    got += re.findall(rb"^Subject: (.*?)\r?$", f.read(), re.M)
            self.assertEqual(sorted(g.decode() for g in got), sorted(subjects), how)
            if how == "stls":
                self.assertIn("STLS", r.stdout)
            # nokeep: fetchmail DELE'd every message and its QUIT applied it.
            self.assertEqual(self.router_host.messages("bert"), [], how)
            # nginx ended TLS; the session ran on bert's mailHost (fetchmail cannot pick its
            # source address: the client is 127.0.0.1 here).
            self.assertEqual(pop2.log().count("login user=bert ip=127.0.0.1 "), logins + 1, how)

    def test_2_a_moved_user_sees_exactly_her_mail_with_stable_uidls(self):
        """dora is on pop1, then mailHost pop2, then pop1 again (whose index is stale
        by then), while mail is delivered and two of every three messages DELE'd.
        Every session, on whichever host: it lists every message delivered before
        it began and not deleted by a committed QUIT (ambiguous ones, DELE'd in a
        session whose QUIT did not answer, may be either way), never one deleted
        by a committed QUIT before it began, and each message keeps one UIDL."""
        user, dn = "dora", "dn: uid=dora,ou=people,dc=example,dc=test\n"
        delivered, records = {}, []
        stop = threading.Event()
        feeder = threading.Thread(target=self.deliverer,
                                  args=([user], 10000, 0.15, delivered, stop))
        reader = threading.Thread(target=self.client, args=(user, records, stop),
                                  kwargs={"dele": lambda k: k % 3 != 0, "retr": False})
        feeder.start()
        reader.start()
        visits = []
        try:
            for host in ("pop1", "pop2", "pop1"):
                if visits:
                    self.slapd.modify(dn + "changetype: modify\nreplace: mailHost\n"
                                      "mailHost: %s\n" % host)
                since = len(records)
                wait_until(lambda: sum(1 for r in records[since:] if r["backend"] == host
                                       and r["quit_ok"]) >= 3,
                           PHASE_DEADLINE, interval=0.2,
                           what="3 sessions of dora on %s (%s)" % (
                               host, [(r["backend"], r["error"]) for r in records[-5:]]))
                visits.append(host)
        finally:
            stop.set()
            feeder.join(30)
            reader.join(60)
        self.assertFalse(feeder.is_alive() or reader.is_alive(), "threads did not stop")
        # The sessions went pop1, pop2, pop1 in that order (else the move proved nothing).
        hosts = [r["backend"] for r in records if r["quit_ok"]]
        order = [h for i, h in enumerate(hosts) if i == 0 or hosts[i - 1] != h]
        self.assertEqual(order[:3], ["pop1", "pop2", "pop1"], hosts)
        self.check_no_resurrection_and_stable_uidls(user, records)
        committed = self.committed(records)
        for i, r in enumerate(records):
            if not r["login"] or r["error"]:
                continue
            ambiguous = {k for q in records[:i] if not q["quit_ok"] for k in q["deleted"]}
            expected = {k for (u, k), t in delivered.items() if t < r["t0"]} - \
                {k for k, t in committed.items() if t < r["t0"]} - ambiguous
            missing = expected - set(r["seen"])
            self.assertFalse(missing, "session %d on %s did not list %s" %
                             (i, r["backend"], sorted(missing)))
        # The maildir agrees with the ledger: kept messages (k % 3 == 0) stay, once.
        left = self.in_maildir(user)
        self.assertTrue(all(n == 1 for n in left.values()), left)
        self.assertFalse(set(left) & set(committed))
        kept = {k for (u, k) in delivered if k % 3 == 0}
        self.assertTrue(kept <= set(left), sorted(kept - set(left)))

    def test_3_nothing_lost_across_a_backend_sigkill(self):
        """amy (pop1) and cleo (pop3) get N numbered messages each over time while
        one client per user downloads (RETR) and DELEs everything through nginx,
        with pauses; pop3 is SIGKILLed mid-run. Invariant, per message k:
          1. when the clients stop, k is in the maildir at most once, and if it
             is not there it was downloaded (nothing vanished undownloaded);
          2. k is not in the maildir if a session DELE'd it and its QUIT was
             answered +OK (a committed deletion is applied);
          3. no session begun after that QUIT lists k again (no duplicate after
             a commit; a session cut before its QUIT may be fetched again, as
             RFC 1939 says);
          4. every download of k is byte for byte what was delivered, and its
             UIDL never changes;
        and after one last session per user, every k was downloaded at least once."""
        users, n = ("amy", "cleo"), 30
        delivered, live = {}, {}
        records = {u: [] for u in users}
        stop_feed, stop_read = threading.Event(), threading.Event()
        feeder = threading.Thread(target=self.deliverer,
                                  args=(users, n, 0.15, delivered, stop_feed))
        readers = [threading.Thread(target=self.client, args=(u, records[u], stop_read),
                                    kwargs={"pause": 0.2, "live": live}) for u in users]
        feeder.start()
        for t in readers:
            t.start()
        try:
            wait_until(lambda: len(delivered) >= n, PHASE_DEADLINE, interval=0.1,
                       what="half the messages delivered")

            def mid_session_on_pop3():
                r = live.get("cleo")
                return r is not None and r["backend"] == "pop3" and len(r["got"]) >= 1
            # The kill lands in a session that has downloaded but not yet QUIT.
            wait_until(mid_session_on_pop3, PHASE_DEADLINE, interval=0.02,
                       what="cleo in the middle of a session on pop3")
            victim = self.backends["pop3"]
            for pid in [victim.pid] + children_of(victim.pid):
                os.kill(pid, signal.SIGKILL)
            victim.proc.wait(10)
            feeder.join(PHASE_DEADLINE)
            self.assertFalse(feeder.is_alive(), "delivery did not finish")

            def caught_up():
                got = {(u, k) for u in users for r in records[u] for k in r["got"]}
                return len(got) == len(users) * n
            try:
                wait_until(caught_up, CATCH_UP_DEADLINE, interval=0.5,
                           what="every message downloaded once")
            except AssertionError:
                pass   # the rules below say what went wrong
        finally:
            stop_feed.set()
            stop_read.set()
            feeder.join(30)
            for t in readers:
                t.join(90)
        self.assertFalse(any(t.is_alive() for t in readers), "clients did not stop")
        self.assertTrue(any(r["backend"] == "pop3" and r["got"] and not r["quit_ok"]
                            for r in records["cleo"]),
                        "the kill cut no cleo session on pop3 that had downloaded")
        self.assertTrue(any(r["backend"] in ("pop1", "pop2") and r["quit_ok"]
                            for r in records["cleo"]), "cleo never moved")
        for user in users:
            rs = records[user]
            sys.stderr.write("%s: %d sessions (%s), %d cut, %d downloads of %d messages\n" % (
                user, len(rs), ", ".join("%s %d" % (b, sum(1 for r in rs if r["backend"] == b))
                                        for b in sorted(self.backends)),
                sum(1 for r in rs if r["login"] and not r["quit_ok"]),
                sum(len(r["got"]) for r in rs), n))
            left = self.in_maildir(user)
            downloaded = {k for r in records[user] for k in r["got"]}
            committed = self.committed(records[user])
            self.assertTrue(all(c == 1 for c in left.values()), (user, left))
            vanished = set(range(n)) - set(left) - downloaded
            self.assertFalse(vanished, "%s's messages %s vanished undownloaded" %
                             (user, sorted(vanished)))
            undead = set(left) & set(committed)
            self.assertFalse(undead, "%s's messages %s are still there after a committed "
                             "DELE" % (user, sorted(undead)))
            self.check_no_resurrection_and_stable_uidls(user, records[user])
            # One last session takes what is left.
            last = None
            for _ in range(20):
                last = self.session(user)
                if last["quit_ok"]:
                    break
                time.sleep(1)
            self.assertTrue(last["quit_ok"], last)
            records[user].append(last)
            self.check_no_resurrection_and_stable_uidls(user, records[user])
            downloaded = {k for r in records[user] for k in r["got"]}
            self.assertEqual(sorted(set(range(n)) - downloaded), [], user)
            self.assertEqual(self.in_maildir(user), {}, user)


if __name__ == "__main__":
    main()

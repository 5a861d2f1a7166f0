"""The brute-force penalty end to end: failed logins from one address get
slower and the delay stops growing at the cap, another address and a trusted
one are not slowed, and an address over the limit is refused even with the
right password; SCRAM-SHA-256 exchanges are counted, delayed and refused the
same way. Timings are asserted as lower bounds only; the exact delays
are read from the helper's debug line "auth penalty ... delay=Ns"."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from fastpop_harness import SRC, DaemonTest, main
from test_sasl import ScramClient, b64, unb64

PENALTY = ("auth_penalty = yes\n"
           "auth_penalty_delay = 1s\n"
           "auth_penalty_max_delay = 2s\n"
           "auth_penalty_block_after = 5\n"
           "auth_penalty_block_time = 1m\n"
           "auth_penalty_trusted = 127.0.0.3/32\n"
           "max_auth_failures = 10\n")


class PenaltyBase(DaemonTest):
    extra_config = PENALTY

    def setUp(self):
        super().setUp()
        self.d.write_config(self.d.config_text().replace("log_level = info",
                                                         "log_level = debug"))
        self.d.start()

    def attempt(self, source, password="wrong"):
        p = self.d.connect(source=(source, 0), timeout=20)
        try:
            self.assertTrue(p.line().startswith("+OK"))
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            t = time.monotonic()
            r = p.cmd("PASS " + password)
            return r, time.monotonic() - t
        finally:
            p.close()

    def delays(self, ip):
        return [float(m) for m in re.findall(r"auth penalty ip=%s user=\S+ ip_score=\S+ "
                                             r"delay=([0-9.]+)s" % re.escape(ip), self.d.log())]


class PenaltyTest(PenaltyBase):

    def test_grows_caps_and_spares_others(self):
        took = []
        for _ in range(3):
            r, t = self.attempt("127.0.0.1")
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
            took.append(t)
        # 1 s, then 2 s, then still 2 s (the cap); lower bounds with a margin
        self.assertGreater(took[0], 0.8)
        self.assertGreater(took[1], 1.6)
        self.assertGreater(took[2], 1.6)
        self.d.wait_log("delay=", count=3)
        self.assertEqual(self.delays("127.0.0.1")[:3], [1.0, 2.0, 2.0])

        # another address: its own score, but alice's user score counts (4th failure: cap)
        r, t = self.attempt("127.0.0.2")
        self.assertTrue(r.startswith("-ERR [AUTH]"))
        self.d.wait_log("ip=127.0.0.2 user=alice", count=1)
        self.assertIn("auth penalty ip=127.0.0.2 user=alice ip_score=1.00", self.d.log())

        # a trusted address is never delayed
        r, t = self.attempt("127.0.0.3")
        self.assertTrue(r.startswith("-ERR [AUTH]"))
        self.d.wait_log("ip=127.0.0.3 user=alice")
        self.assertNotIn("auth penalty ip=127.0.0.3 user=alice ip_score=0.00 delay=1", self.d.log())
        self.assertEqual(self.delays("127.0.0.3"), [0.0])

        # the right password from a clean address works (and clears alice's score)
        r, t = self.attempt("127.0.0.4", "alice-secret")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertIn("auth failed user=alice ip=127.0.0.1 mechanism=USER reason=bad-password",
                      self.d.log())

    def test_blocked_address_refused_even_with_right_password(self):
        for _ in range(5):
            r, _ = self.attempt("127.0.0.5")
            self.assertTrue(r.startswith("-ERR [AUTH]"))
        self.d.wait_log("auth penalty ip=127.0.0.5 blocked for 60s")
        r, _ = self.attempt("127.0.0.5", "alice-secret")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.d.wait_log("auth failed user=alice ip=127.0.0.5 mechanism=USER reason=ip-blocked")
        # others are not blocked
        r, _ = self.attempt("127.0.0.6", "alice-secret")
        self.assertTrue(r.startswith("+OK"), r)


class BlockedAddressTest(PenaltyBase):
    """A blocked address never guesses faster, still counts against the user,
    and never logs in from a worker's credential cache (issue 12, item 1)."""
    # One worker: a worker answers from its memory only logins it saw the helper accept.
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    MAX_DELAY = 2.0   # auth_penalty_max_delay in PENALTY

    def attempt_as(self, source, user, password):
        p = self.d.connect(source=(source, 0), timeout=20)
        try:
            self.assertTrue(p.line().startswith("+OK"))
            self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
            t = time.monotonic()
            r = p.cmd("PASS " + password)
            return r, time.monotonic() - t
        finally:
            p.close()

    def block(self, source):
        """Five failures for an unknown name block source; alice's score stays 0."""
        for _ in range(5):
            r, _ = self.attempt_as(source, "ghost", "x")
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.d.wait_log("auth penalty ip=%s blocked for 60s" % source)

    def cache_alice(self, source):
        """alice logs in (filling the credential cache) and again from its cache."""
        self.assertTrue(self.attempt_as(source, "alice", "alice-secret")[0].startswith("+OK"))
        self.d.wait_log("login user=alice ip=%s mechanism=USER messages=0 cache=miss" % source)

    def test_blocked_address_is_slow_and_gets_no_cache_hit(self):
        self.cache_alice("127.0.0.20")
        self.block("127.0.0.21")
        hits = self.d.log().count("cache=hit")
        # the right password from the blocked address does not log in, from the cache or not
        r, t = self.attempt_as("127.0.0.21", "alice", "alice-secret")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.assertGreater(t, 0.8 * self.MAX_DELAY)
        # wrong guesses for a cached user: never answered before the maximum delay
        for _ in range(2):
            r, t = self.attempt_as("127.0.0.21", "alice", "guess")
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
            self.assertGreater(t, 0.8 * self.MAX_DELAY)
        self.d.wait_log("auth failed user=alice ip=127.0.0.21 mechanism=USER reason=ip-blocked",
                        count=3)
        self.assertEqual(self.d.log().count("cache=hit"), hits)

    def test_blocked_failures_count_against_the_user(self):
        self.block("127.0.0.22")
        # three refusals from the blocked address count for bob: score 3, delay at the cap
        for _ in range(3):
            r, _ = self.attempt_as("127.0.0.22", "bob", "guess")
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        # so bob's next failure from a clean address waits the cap (2 s), not the first step (1 s)
        r, t = self.attempt_as("127.0.0.23", "bob", "guess")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.assertGreater(t, 0.8 * self.MAX_DELAY)
        self.d.wait_log("auth penalty ip=127.0.0.23 user=bob")
        score = re.findall(r"auth penalty ip=127\.0\.0\.22 user=bob ip_score=([0-9.]+)",
                           self.d.log())
        self.assertEqual(len(score), 3, self.d.log()[-3000:])

    def test_user_under_penalty_gets_no_cache_hit(self):
        self.cache_alice("127.0.0.24")
        r, _ = self.attempt_as("127.0.0.25", "alice", "guess")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        # alice is under penalty now: her right password goes to the helper, from any address
        r, _ = self.attempt_as("127.0.0.26", "alice", "alice-secret")
        self.assertTrue(r.startswith("+OK"), r)
        self.d.wait_log("login user=alice ip=127.0.0.26 mechanism=USER messages=0 cache=miss")
        # the success cleared her score: the next login is answered by the cache again
        r, _ = self.attempt_as("127.0.0.26", "alice", "alice-secret")
        self.assertTrue(r.startswith("+OK"), r)
        self.d.wait_log("login user=alice ip=127.0.0.26 mechanism=USER messages=0 cache=hit")


class ScramPenaltyTest(PenaltyBase):
    """SCRAM goes through the same accounting as USER/PASS, PLAIN and LOGIN."""
    extra_config = PENALTY.replace("auth_penalty_block_after = 5",
                                   "auth_penalty_block_after = 4") + \
        "auth_mechanisms = PLAIN SCRAM-SHA-256\n"

    def scram(self, source, password):
        """One SCRAM exchange for alice; returns (answer, seconds the last step took)."""
        p = self.d.connect(source=(source, 0), timeout=20)
        try:
            self.assertTrue(p.line().startswith("+OK"))
            cl = ScramClient("alice", "alice-secret")
            t = time.monotonic()
            r = p.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
            if not r.startswith("+ "):
                return r, time.monotonic() - t
            final = b64(cl.final(unb64(r[2:]).decode(), password))
            t = time.monotonic()
            r = p.cmd(final)
            if r.startswith("+ "):
                self.assertEqual(unb64(r[2:]).decode(), cl.expect_v)
                r = p.cmd("")
            return r, time.monotonic() - t
        finally:
            p.close()

    def test_scram_failures_delay_and_block(self):
        took = []
        for _ in range(2):
            r, t = self.scram("127.0.0.7", "wrong")
            self.assertTrue(r.startswith("-ERR [AUTH]"), r)
            took.append(t)
        # 1 s, then 2 s: the same growth as for PASS (lower bounds, with a margin)
        self.assertGreater(took[0], 0.8)
        self.assertGreater(took[1], 1.6)
        # a PASS failure from that address continues the same score (the cap: 2 s)
        r, t = self.attempt("127.0.0.7")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.assertGreater(t, 1.6)
        self.d.wait_log("auth penalty ip=127.0.0.7 ", count=3)
        self.assertEqual(self.delays("127.0.0.7")[:3], [1.0, 2.0, 2.0])
        # three failures (less a little decay) on one score, whatever the mechanism
        score = re.findall(r"auth penalty ip=127\.0\.0\.7 user=alice ip_score=([0-9.]+)",
                           self.d.log())[2]
        self.assertGreater(float(score), 2.5)
        self.assertIn("auth failed user=alice ip=127.0.0.7 mechanism=SCRAM-SHA-256 "
                      "reason=bad-password", self.d.log())

        # the fourth failure (SCRAM again) blocks the address...
        r, _ = self.scram("127.0.0.7", "wrong")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.d.wait_log("auth penalty ip=127.0.0.7 blocked for 60s")
        # ...and then even the right password is refused at the first SCRAM step,
        # with no server-first challenge
        r, _ = self.scram("127.0.0.7", None)
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.d.wait_log("auth failed user=alice ip=127.0.0.7 mechanism=SCRAM-SHA-256 "
                        "reason=ip-blocked")
        r, _ = self.attempt("127.0.0.7", "alice-secret")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)

        # another address logs in with SCRAM (alice's user score is cleared by it)
        r, _ = self.scram("127.0.0.8", None)
        self.assertTrue(r.startswith("+OK"), r)
        self.d.wait_log("auth penalty ip=127.0.0.8 user=alice")

    def test_scram_success_waits_the_address_delay(self):
        r, t = self.attempt("127.0.0.9")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        # the right password from an address with one failure: its 1 s delay still applies,
        # so timing does not tell a right password from a wrong one
        r, t = self.scram("127.0.0.9", None)
        self.assertTrue(r.startswith("+OK"), r)
        self.assertGreater(t, 0.8)


class RateLimitTest(DaemonTest):
    """Helper work is limited per address before any hashing (issue 12, item 11): a
    flood from one address gets [SYS/TEMP] while another address still logs in."""
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    extra_config = "auth_rate_limit = 2\nauth_rate_burst = 4\nauth_cache_ttl = 0s\n"

    def test_flood_gets_tempfail_others_log_in(self):
        self.d.start()
        flood = []
        try:
            for _ in range(12):
                p = self.d.connect(source=("127.0.0.30", 0), timeout=20)
                self.assertTrue(p.line().startswith("+OK"))
                self.assertTrue(p.cmd("USER alice").startswith("+OK"))
                flood.append(p)
            for p in flood:
                p.send("PASS guess\r\n")
            answers = [p.line() for p in flood]
        finally:
            for p in flood:
                p.close()
        temp = [a for a in answers if a.startswith("-ERR [SYS/TEMP]")]
        # at most the burst plus what refilled meanwhile was worked on; the rest was refused
        self.assertGreaterEqual(len(temp), 12 - 4 - 4, answers)
        self.assertTrue(all(a.startswith("-ERR [AUTH]") or a.startswith("-ERR [SYS/TEMP]")
                            for a in answers), answers)
        self.d.wait_log("auth rate limit: ip=127.0.0.30 over 2 requests/s (burst 4)")
        # another address is not affected
        p = self.d.connect(source=("127.0.0.31", 0), timeout=20)
        try:
            self.assertTrue(p.login("bob", "bob-secret").startswith("+OK"))
        finally:
            p.close()


SYSLOG_SAMPLE = """\
Nov 23 01:30:15 mx1 fastpop[1234]: auth: auth failed user=alice ip=192.0.2.7 mechanism=USER reason=bad-password
Nov 23 01:30:16 mx1 fastpop[1234]: auth: auth failed user=)(uid=* ip=2001:db8::5 mechanism=PLAIN reason=unknown-user
Nov 23 01:30:17 mx1 fastpop[1234]: auth: auth failed user=x\\x20ip=198.51.100.9 ip=192.0.2.8 mechanism=USER reason=bad-password
Nov 23 01:30:18 mx1 fastpop[1234]: auth: auth tempfail user=bob ip=192.0.2.9 mechanism=USER reason=ldap-down
Nov 23 01:30:19 mx1 fastpop[1234]: worker[0]: login failed user=alice ip=192.0.2.7 mechanism=USER failures=1
"""


@unittest.skipUnless(shutil.which("fail2ban-regex"), "fail2ban-regex not installed")
class Fail2banTest(DaemonTest):
    """etc/fail2ban/filter.d/fastpop.conf against real log lines, with fail2ban-regex."""

    def run_regex(self, text):
        conf = tempfile.mkdtemp(prefix="fastpop-f2b-")
        self.addCleanup(shutil.rmtree, conf, True)
        os.makedirs(os.path.join(conf, "filter.d"))
        for name in os.listdir("/etc/fail2ban"):
            if name.startswith("paths-"):
                shutil.copy(os.path.join("/etc/fail2ban", name), conf)
        shutil.copy("/etc/fail2ban/filter.d/common.conf", os.path.join(conf, "filter.d"))
        filt = os.path.join(conf, "filter.d", "fastpop.conf")
        shutil.copy(os.path.join(SRC, "etc/fail2ban/filter.d/fastpop.conf"), filt)
        log = os.path.join(conf, "test.log")
        with open(log, "w") as f:
            f.write(text)
        out = subprocess.run(["fail2ban-regex", "--config", conf, "-v", log, filt],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = out.stdout.decode()
        self.assertEqual(out.returncode, 0, text)
        return text

    def test_filter_matches_each_failure_once(self):
        self.d.start()
        for user, pw in (("alice", "bad"), ("ghost", "x"), ("alice", "alice-secret")):
            p = self.d.connect()
            p.line()
            p.cmd("USER " + user)
            p.cmd("PASS " + pw)
            p.close()
        self.d.wait_log("auth failed", count=2)
        self.d.wait_log("login user=alice")
        out = self.run_regex(self.d.log())
        self.assertIn("Lines: ", out)
        self.assertRegex(out, r"\b2 matched\b")

    def test_filter_on_syslog_lines_and_forged_names(self):
        out = self.run_regex(SYSLOG_SAMPLE)
        self.assertRegex(out, r"\b3 matched\b")
        self.assertIn("192.0.2.8", out)
        self.assertNotIn("198.51.100.9  ", out)


if __name__ == "__main__":
    main()

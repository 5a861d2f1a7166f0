"""popctl who and kick with user names a terminal or a short field could
get wrong: control characters are printed escaped (\\xNN), never raw; long
names are matched whole, never by a cut prefix; a name longer than any
session can have is refused, not silently unmatched."""
import json
import os
import subprocess

from fastpop_harness import BIN, IS_ROOT, DaemonTest, main

# U+009B is CSI, a terminal control in UTF-8 (C2 9B): "\u009b2J" clears some screens.
CONTROL_NAME = "mal\u009b2Jlory"
PREFIX = "u" * 63
LONG_A = PREFIX + "-alpha"
LONG_B = PREFIX + "-bravo"
LONGEST = "L" * 127   # the longest name USER takes (worker/conn.h: user[128])


class Names(DaemonTest):
    users = {CONTROL_NAME: "pw-c", LONG_A: "pw-a", LONG_B: "pw-b", LONGEST: "pw-l"}
    extra_config = "control_group = vmail\n" if IS_ROOT else ""

    def setUp(self):
        super().setUp()
        self.d.start()
        self.sock = os.path.join(self.d.run_dir, "control.sock")

    def popctl(self, *args):
        cmd = [os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s", self.sock] + list(args)
        return subprocess.run(cmd, capture_output=True, timeout=30)

    def session(self, user):
        p = self.d.connect()
        self.addCleanup(p.close)
        r = p.login(user, self.d.users[user])
        self.assertTrue(r.startswith("+OK"), r + self.d.log()[-2000:])
        return p

    def who_users(self, *target):
        r = self.popctl("--json", "who", *target)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(row["user"] for row in json.loads(r.stdout.decode())["rows"])

    def test_no_session_carries_control_bytes_to_popctl_who(self):
        """The one name rule (daemon/runtime/username.c) refuses C0/C1 controls at
        login, so no session can put a terminal escape into popctl who; who
        still escapes what it prints (text_log_escape, unit-tested), so the
        table stays plain ASCII whatever the scoreboard holds."""
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        r = p.cmd("USER " + CONTROL_NAME)
        if r.startswith("+OK"):
            r = p.cmd("PASS secret")
        self.assertTrue(r.startswith("-ERR"), r)
        self.session(LONG_A)
        r = self.popctl("who")
        self.assertEqual(r.returncode, 0, r.stderr)
        for byte in r.stdout:
            self.assertTrue(byte == 0x0a or 0x20 <= byte < 0x7f,
                            "raw byte 0x%02x in popctl who: %r" % (byte, r.stdout))
        self.assertNotIn(b"mal", r.stdout)

    def test_long_names_match_whole(self):
        a, b, longest = self.session(LONG_A), self.session(LONG_B), self.session(LONGEST)
        self.assertEqual(self.who_users(LONG_A), [LONG_A])
        self.assertEqual(self.who_users(LONGEST), [LONGEST])
        self.assertEqual(self.who_users(), sorted([LONG_A, LONG_B, LONGEST]))
        # The common prefix is nobody's name: nothing to see, nothing to kick.
        self.assertEqual(self.who_users(PREFIX), [])
        r = self.popctl("kick", PREFIX)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"0 session(s) kicked", r.stdout)
        self.assertTrue(a.cmd("NOOP").startswith("+OK"))
        r = self.popctl("kick", LONG_B)
        self.assertIn(b"1 session(s) kicked", r.stdout)
        self.assertTrue(b.line().startswith("-ERR [SYS/TEMP]"))
        self.assertTrue(a.cmd("NOOP").startswith("+OK"))
        self.assertTrue(longest.cmd("NOOP").startswith("+OK"))
        # The text table shows the whole name too.
        r = self.popctl("who", LONGEST)
        self.assertIn(LONGEST.encode() + b" ", r.stdout)

    def test_a_name_longer_than_any_session_can_have_is_refused(self):
        for verb in ("kick", "who"):
            r = self.popctl(verb, "x" * 200)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn(b"at most 127 bytes", r.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""popctl index uidl-diff --site: the whole site's UIDL continuity report,
over every user of the password file, with the maildirs as a login reads them."""

import json
import os
import shutil
import subprocess
import time
import unittest

from fastpop_harness import BIN, IS_ROOT, DaemonTest, main
from test_index import age, session_lists

OLD = 1600000000  # names older than the legacy lists


def site(d, *args):
    return subprocess.run([os.path.join(BIN, "popctl"), "-c", d.conf, "index", "uidl-diff",
                           "--site"] + list(args), capture_output=True, text=True, timeout=60)


def put(root, name, text="Subject: x\n\nbody\n"):
    with open(os.path.join(root, "cur", name), "w") as f:
        f.write(text)


def courier_list(root, names):
    """A /2 courierpop3dsizelist that knows names, UIDs 1.. with uidv 1277387390."""
    with open(os.path.join(root, "courierpop3dsizelist"), "w") as f:
        f.write("/2 %d 1277387390\n" % (len(names) + 1))
        for i, n in enumerate(names):
            f.write("%s 20 %d:1277387390\n" % (n, i + 1))


@unittest.skipUnless(IS_ROOT, "popctl reads the password file as root, then becomes the mail user")
class SiteReport(DaemonTest):
    workers = 1
    users = {"alice": "a", "bob": "b", "carol": "c", "dave": "d", "erin": "e"}

    def setUp(self):
        super().setUp()
        d = self.d
        # alice: Courier's list knows every message: identical.
        root = d.maildir("alice")
        names = ["%d.M%dP1.old:2,S" % (OLD + i, i) for i in range(3)]
        for n in names:
            put(root, n)
        courier_list(root, names)
        d._own(root)
        # bob: Dovecot's list misses a message older than the list: different.
        root = d.maildir("bob")
        put(root, "%d.M1P1.old:2,S" % OLD)
        put(root, "%d.M2P1.old:2,S" % (OLD + 1))
        with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
            f.write("3 V1277387390 N3\n1 :%d.M1P1.old\n" % OLD)
        d._own(root)
        # carol: a maildir the mail user may not read: unreadable.
        root = d.maildir("carol")
        os.chown(root, 0, 0)
        os.chmod(root, 0o700)
        # dave: the maildir is a symlink planted by a mail user: never followed.
        root = d.maildir("dave")
        shutil.rmtree(root)
        os.symlink(d.maildir("alice"), root)
        # erin: no maildir yet (never got mail): identical, nothing was served.
        shutil.rmtree(os.path.join(d.mail, "erin"))

    def test_text_report_and_exit_code(self):
        r = site(self.d, "--rate", "0")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = {line.split("\t")[1]: line.split("\t") for line in r.stdout.splitlines()
                 if "\t" in line}
        self.assertEqual(lines["alice"][0], "identical")
        self.assertIn("legacy=courierpop3dsizelist messages=3 matched=3 differ=0", lines["alice"][3])
        self.assertEqual(lines["bob"][0], "different")
        self.assertIn("matched=1 differ=0 unmatched=1", lines["bob"][3])
        self.assertEqual(lines["carol"][0], "unreadable")
        self.assertEqual(lines["carol"][4], "Permission denied")
        self.assertEqual(lines["dave"][0], "unreadable")
        self.assertEqual(lines["dave"][4], "a symlink (not followed)")
        self.assertEqual(lines["erin"][0], "identical")
        self.assertIn("users checked 5: identical 2, different 1, unreadable 2", r.stdout)
        # No progress line: stdout is not a terminal.
        self.assertNotIn("\r", r.stdout)

    def test_json_shape(self):
        r = site(self.d, "--json", "--rate", "0")
        self.assertEqual(r.returncode, 1, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["summary"], {"checked": 5, "identical": 2, "different": 1,
                                          "unreadable": 2})
        users = {u["user"]: u for u in doc["users"]}
        self.assertEqual(sorted(users), ["alice", "bob", "carol", "dave", "erin"])
        self.assertEqual(set(users["bob"]), {"user", "maildir", "status", "legacy", "messages",
                                             "matched", "differ", "unmatched", "index_differ",
                                             "error"})
        self.assertEqual(users["bob"]["legacy"], "dovecot-uidlist")
        self.assertEqual(users["bob"]["unmatched"], 1)
        self.assertEqual(users["alice"]["maildir"], os.path.join(self.d.mail, "alice", "Maildir"))
        self.assertIsNone(users["alice"]["error"])
        self.assertEqual(users["carol"]["status"], "unreadable")

    def test_all_identical_exits_0(self):
        d = self.d
        for user in ("bob", "carol", "dave"):
            del d.users[user]
        d.add_user("erin", "e")  # rewrites the password file with the users left
        shutil.rmtree(os.path.join(d.mail, "erin", "Maildir"))
        r = site(d, "--rate", "0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("users checked 2: identical 2, different 0, unreadable 0", r.stdout)

    def test_progress_line_on_a_terminal(self):
        import pty
        master, slave = pty.openpty()
        p = subprocess.Popen([os.path.join(BIN, "popctl"), "-c", self.d.conf, "index",
                              "uidl-diff", "--site", "--rate", "0"], stdout=slave,
                             stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(30), 1)
        text = out.decode()
        self.assertIn("checked 5 of 5: 1 different, 2 unreadable", text)
        self.assertIn("\r\x1b[K", text)
        self.assertIn("users checked 5: identical 2, different 1, unreadable 2", text)

    def test_rate_limit_paces_the_walk(self):
        # 5 maildirs at 10 a second: at least 0.4 s between the first and the last.
        t0 = time.monotonic()
        r = site(self.d, "--rate", "10")
        self.assertEqual(r.returncode, 1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        for bad in ("-1", "x", "1e9"):
            r = site(self.d, "--rate", bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--rate", r.stderr)

    def test_warm_index_serving_other_uidls_is_different(self):
        # fastpop served alice (its index recorded Courier's UIDLs); then the old
        # server, still running, rewrote its list: a warm login would serve the old ones.
        d = self.d
        root = d.maildir("alice")
        age(root)
        d.start()
        self.assertEqual(len(session_lists(d, "alice", "a")[0]), 3)
        d.stop()
        names = sorted(n for n in os.listdir(os.path.join(root, "cur")))
        with open(os.path.join(root, "courierpop3dsizelist"), "w") as f:
            f.write("/2 10 1300000000\n")
            for i, n in enumerate(names):
                f.write("%s 20 %d:1300000000\n" % (n, i + 5))
        r = site(d, "--json", "--rate", "0")
        alice = [u for u in json.loads(r.stdout)["users"] if u["user"] == "alice"][0]
        self.assertEqual(alice["status"], "different", r.stdout)
        self.assertEqual(alice["differ"], 0)
        self.assertEqual(alice["index_differ"], 3)


@unittest.skipUnless(IS_ROOT and shutil.which("slapd") or os.path.exists("/usr/sbin/slapd"),
                     "needs root and slapd")
class SiteReportLdap(unittest.TestCase):
    """passdb = passwd-file ldap: the file's users and every directory entry, paged
    past slapd's default size limit of 500 entries."""

    def test_ldap_users_are_listed(self):
        from fastpop_harness import Daemon
        from ldap_fixture import READER_DN, Slapd, hash_ssha, ldap_config, person, secret_file
        pw = hash_ssha("pw")
        entries = [person("u%03d" % i, pw) for i in range(520)] + [person("alice", pw)]
        # The reader gets 100 entries a search but any number in pages of up to 200:
        # only a paged search lists them all.
        slapd = Slapd(entries, database_conf='limits dn.exact="%s" size=100 size.pr=200 '
                      'size.prtotal=unlimited\n' % READER_DN).start()
        self.addCleanup(slapd.cleanup)
        d = Daemon(workers=1, users={"alice": "a", "local": "l"})
        self.addCleanup(d.cleanup)
        d.extra_config = ldap_config(slapd.uri, secret_file(d.dir), "bind")
        d.write_config()
        # u007 (a directory user) has a list that misses an old message.
        root = d.maildir("u007")
        put(root, "%d.M1P1.old:2,S" % OLD)
        put(root, "%d.M2P1.old:2,S" % (OLD + 1))
        with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
            f.write("3 V1277387390 N3\n1 :%d.M1P1.old\n" % OLD)
        d._own(root)
        r = site(d, "--json", "--rate", "0")
        self.assertEqual(r.returncode, 1, r.stderr)
        doc = json.loads(r.stdout)
        names = [u["user"] for u in doc["users"]]
        # alice is in both: listed once. 520 + alice + local.
        self.assertEqual(len(names), 522)
        self.assertEqual(names.count("alice"), 1)
        self.assertIn("u519", names)
        self.assertEqual(doc["summary"], {"checked": 522, "identical": 521, "different": 1,
                                          "unreadable": 0})
        u007 = [u for u in doc["users"] if u["user"] == "u007"][0]
        self.assertEqual(u007["maildir"], os.path.join(d.mail, "u007", "Maildir"))
        self.assertEqual(u007["unmatched"], 1)
        # The directory down: nothing is reported as identical, exit 2.
        slapd.stop()
        r = site(d, "--rate", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("LDAP", r.stderr)
        self.assertEqual(r.stdout, "")


class SiteReportAuthlib(unittest.TestCase):
    """passdb = authlib: the users courier-authdaemond's ENUMERATE lists (the real
    daemon with authuserdb, t/e2e/authlib_fixture.py)."""

    def test_authlib_users_are_listed(self):
        import grp
        import pwd
        from authlib_fixture import Authdaemond, available
        from fastpop_harness import AUTH_USER, Daemon
        from test_authlib import userdb_users
        why = available()
        if why:
            self.skipTest(why)
        d = Daemon(workers=1, users={"local": "l"})
        self.addCleanup(d.cleanup)
        helper_group = grp.getgrgid(pwd.getpwnam(AUTH_USER).pw_gid).gr_name
        courier = Authdaemond(userdb_users(d.mail), helper_group)
        self.addCleanup(courier.cleanup)
        courier.start()
        text = d.config_text("passdb = authlib\nauthlib_socket = %s\nauthlib_timeout = 3s\n"
                             % courier.socket)
        text = "\n".join(line for line in text.splitlines() if not line.startswith("maildir ="))
        d.write_config(text + "\nmaildir = %h/Maildir\n")
        root = d.maildir("calice")
        names = ["%d.M1P1.old:2,S" % OLD]
        put(root, names[0])
        courier_list(root, names)
        d._own(root)
        d.maildir("cdave")
        d.maildir("cerin")   # TLS-only: still a user whose UIDLs fastpop serves
        r = site(d, "--json", "--rate", "0")
        # None different, two that fastpop will not serve at all: exit 3.
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        users = {u["user"]: u for u in doc["users"]}
        self.assertEqual(sorted(users), ["calice", "cbob", "ccarol", "cdave", "cerin"])
        self.assertEqual(users["cerin"]["status"], "identical")
        self.assertEqual(users["calice"]["status"], "identical")
        self.assertEqual(users["calice"]["matched"], 1)
        self.assertEqual(users["calice"]["maildir"], os.path.join(d.mail, "calice", "Maildir"))
        self.assertEqual(users["cdave"]["maildir"], os.path.join(d.mail, "cdave", "Maildir"))
        self.assertEqual(users["cbob"]["status"], "unreadable")
        self.assertIn("disablepop3", users["cbob"]["error"])
        self.assertIn("UID", users["ccarol"]["error"])
        self.assertEqual(doc["summary"], {"checked": 5, "identical": 3, "different": 0,
                                          "unreadable": 2})
        # authdaemond down: exit 2, nothing reported.
        courier.stop()
        r = site(d, "--rate", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("authlib_socket", r.stderr)


if __name__ == "__main__":
    main()

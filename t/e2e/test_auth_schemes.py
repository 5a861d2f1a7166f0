"""Password schemes against hashes made at test time by the tools operators
use: `doveadm pw` (Dovecot), `mkpasswd` (Debian whois), `slappasswd`
(OpenLDAP). Each hash goes into a passwd file and is checked with
`fastpop-auth --test` (the same check the workers get): the right password
logs in, a wrong one fails. A missing tool skips its cases, never the others.
SCRAM-SHA-256 from doveadm is also used for a real SCRAM login."""

import os
import shutil
import subprocess
import unittest

from fastpop_harness import BIN, Daemon, DaemonTest, main
from test_sasl import ScramClient, b64, unb64

PW = "Tr0ub4dor&3 x"
WRONG = "Tr0ub4dor&3 X"


def doveadm(scheme):
    return subprocess.check_output(["doveadm", "pw", "-s", scheme, "-p", PW],
                                   stderr=subprocess.PIPE, timeout=30).decode().strip()


def mkpasswd(method):
    return subprocess.check_output(["mkpasswd", "-m", method, PW], timeout=30).decode().strip()


def slappasswd(scheme, *extra):
    return subprocess.check_output(["slappasswd", "-s", PW, "-h", scheme] + list(extra),
                                   env=dict(os.environ, LDAPNOINIT="1"),
                                   timeout=30).decode().strip()


# (tool, what makes the hash, expected prefix of what it made)
CASES = [("doveadm", lambda s=s: doveadm(s), "{%s}" % s) for s in (
    "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "CRYPT", "MD5-CRYPT", "SSHA", "SSHA256",
    "SSHA512", "SHA", "SHA256", "SHA512", "SCRAM-SHA-256", "PLAIN", "CLEARTEXT")]
CASES += [("mkpasswd", lambda m=m: mkpasswd(m), p) for m, p in (
    ("yescrypt", "$y$"), ("bcrypt", "$2b$"), ("sha512crypt", "$6$"), ("sha256crypt", "$5$"),
    ("md5crypt", "$1$"))]
CASES += [("slappasswd", lambda: slappasswd("{SSHA}"), "{SSHA}"),
          ("slappasswd", lambda: slappasswd("{SHA}"), "{SHA}"),
          ("slappasswd", lambda: slappasswd("{CRYPT}", "-c", "$6$%.16s"), "{CRYPT}$6$")]


class ToolHashes(unittest.TestCase):
    def setUp(self):
        # No credential cache: every check below must go through the scheme code.
        self.d = Daemon(extra_config="auth_cache_ttl = 0s\n")
        self.addCleanup(self.d.cleanup)

    def check(self, user, password):
        r = subprocess.run([os.path.join(BIN, "fastpop-auth"), "-c", self.d.conf, "--test", user],
                           input=password.encode() + b"\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_tool_hashes(self):
        users, ran = {}, set()
        for n, (tool, make, prefix) in enumerate(CASES):
            if shutil.which(tool) is None:
                continue
            stored = make()
            self.assertTrue(stored.startswith(prefix), (tool, prefix, stored))
            users["u%d" % n] = (tool, stored)
            ran.add(tool)
        if not users:
            self.skipTest("none of doveadm, mkpasswd, slappasswd installed")
        with open(self.d.passwd, "a") as f:
            for user, (_, stored) in users.items():
                f.write("%s:%s::::::\n" % (user, stored))
        for user, (tool, stored) in users.items():
            with self.subTest(tool=tool, stored=stored):
                rc, out, err = self.check(user, PW)
                self.assertEqual(rc, 0, out + err)
                self.assertTrue(out.startswith("ok user=%s " % user), out)
                rc, out, err = self.check(user, WRONG)
                self.assertEqual((rc, out), (1, "fail\n"), err)
                self.assertIn("reason=bad-password", err)
        print("checked %d hashes from %s" % (len(users), ", ".join(sorted(ran))))


@unittest.skipUnless(shutil.which("doveadm"), "doveadm not installed")
class DoveadmScram(DaemonTest):
    extra_config = "auth_mechanisms = PLAIN SCRAM-SHA-256\n"

    def test_scram_login_with_doveadm_keys(self):
        with open(self.d.passwd, "a") as f:
            f.write("erin:%s::::::\n" % doveadm("SCRAM-SHA-256"))
        self.d.maildir("erin")
        self.d.start()
        for password, ok in ((PW, True), (WRONG, False)):
            p = self.d.connect()
            self.assertTrue(p.line().startswith("+OK"))
            cl = ScramClient("erin", PW)
            r = p.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
            self.assertTrue(r.startswith("+ "), r)
            r = p.cmd(b64(cl.final(unb64(r[2:]).decode(), password)))
            if ok:
                self.assertEqual(unb64(r[2:]).decode(), cl.expect_v)
                self.assertTrue(p.cmd("").startswith("+OK"))
            else:
                self.assertTrue(r.startswith("-ERR [AUTH]"), r)
            p.close()
        self.d.wait_log("login user=erin ip=127.0.0.1 mechanism=SCRAM-SHA-256")
        self.d.wait_log("auth failed user=erin ip=127.0.0.1 mechanism=SCRAM-SHA-256 "
                        "reason=bad-password")


if __name__ == "__main__":
    main()

"""Real POP3 clients over TLS against the real fastpopd, every one verifying
the server's certificate against a test CA: curl (pop3s:// and pop3:// with
--ssl-reqd), fetchmail (--ssl and STLS with --sslproto), getmail6
(SimplePOP3SSLRetriever), Python's poplib (POP3_SSL and stls()) and
openssl s_client -starttls pop3.

plaintext_auth is left at its default (no): a client that logs in on the
plain port must have done STLS first. The expected bytes per client are
derived from the maildir files as described in test_clients.py.
"""
import grp
import os
import poplib
import pwd
import re
import ssl
import tempfile

from fastpop_harness import IS_ROOT, MAIL_USER, MAIL_GROUP, pop3_size, wait_until, main
from test_clients import (big_message, client_env, crlf_to_lf, deliver_corpus,
                          maildir_files, make_mda, require, run, strip_added_fields, uidl)
from tls_fixture import TlsTest, client_context

USER = "alice"
PASSWORD = "alice-secret"

CORPUS = [
    b"From: one@example.org\nTo: alice@example.org\nSubject: dots\n\n"
    b"body line\n.leading dot\n.\n..two dots\n...\nend\n",
    b"From: two@example.org\r\nTo: alice@example.org\r\nSubject: crlf\r\n\r\n"
    b"first\r\n\r\n.",
    b"From: three@example.org\nTo: alice@example.org\nSubject: eight bit\n\n"
    b"na\xefve caf\xe9\n\xff\xfe\x80 invalid utf-8 \xc3\x28\n",
    big_message(1024 * 1024),
]


class TlsClientTest(TlsTest):

    workers = 2

    def setUp(self):
        super().setUp()
        self.names = deliver_corpus(self.d, CORPUS, odd_host={})
        self.sent = dict(zip(self.names, CORPUS))
        self.work = tempfile.mkdtemp(prefix="client-", dir=self.d.dir)
        os.chmod(self.work, 0o755)

    def wire(self, name):
        return pop3_size(maildir_files(self.d, USER)[name])

    def tls_sessions(self):
        """(tls version, user) of every logged session with TLS."""
        return re.findall(r"session user=(\S+) ip=127\.0\.0\.1 port=\d+ reason=\S+ "
                          r"duration=\S+ tls=(TLSv1\.[23]) ", self.d.log())

    def assert_no_clear_login(self):
        self.assertNotIn("tls=no commands", "\n".join(
            l for l in self.d.log().splitlines() if "session user=alice" in l))


# --- curl -------------------------------------------------------------------------

class Curl(TlsClientTest):

    def curl(self, url, *args):
        return run([require("curl"), "-q", "-s", "-S", "--max-time", "30"] + list(args) +
                   [url], env=client_env(self.work))

    def test_pop3s_implicit(self):
        base = "pop3s://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.port())
        r = self.curl(base, "--cacert", self.ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(b"%d %d\r\n" % (i + 1, len(self.wire(n)))
                                            for i, n in enumerate(self.names)))
        for i, name in enumerate(self.names):
            r = self.curl(base + str(i + 1), "--cacert", self.ca)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, self.wire(name), "message %d" % (i + 1))
        # Verification is really on: without the test CA curl refuses (60).
        r = self.curl(base + "1", "--capath", "/nonexistent", "--cacert", "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")
        self.assertIn(("alice", "TLSv1.3"), self.tls_sessions())
        self.assert_no_clear_login()

    def test_pop3_ssl_reqd(self):
        base = "pop3://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.d.port)
        for i, name in enumerate(self.names):
            r = self.curl(base + str(i + 1), "--ssl-reqd", "--cacert", self.ca)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, self.wire(name), "message %d" % (i + 1))
        r = self.curl(base, "--ssl-reqd", "--cacert", self.ca, "-X", "UIDL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(b"%d %s\r\n" % (i + 1, uidl(n).encode())
                                            for i, n in enumerate(self.names)))
        # The server logs a session when the client has closed: wait for the last one.
        wait_until(lambda: len([s for s in self.tls_sessions() if s[0] == "alice"]) ==
                   len(self.names) + 1, what="a session line per curl run")
        self.assert_no_clear_login()
        # Without TLS the password is refused (plaintext_auth defaults to no):
        # curl reports the login failure (67) and gets nothing.
        r = self.curl(base + "1")
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertEqual(r.stdout, b"")


# --- fetchmail ----------------------------------------------------------------------

class Fetchmail(TlsClientTest):

    def setUp(self):
        super().setUp()
        self.out, self.mda = make_mda(self.work)
        self.local = pwd.getpwuid(os.getuid()).pw_name

    def fetchmail(self, port, ssl_options, *args):
        rc = os.path.join(self.work, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('set no syslog\n'
                    'poll 127.0.0.1 service %d protocol pop3 uidl\n'
                    '  user "%s" password "%s" is "%s" here\n'
                    '  options keep fetchall no rewrite %s\n'
                    '  mda "%s"\n' % (port, USER, PASSWORD, self.local, ssl_options, self.mda))
        os.chmod(rc, 0o600)
        r = run([require("fetchmail"), "-f", rc, "--nodetach", "--nosyslog", "-v",
                 "-i", os.path.join(self.work, "fetchids"),
                 "--pidfile", os.path.join(self.work, "pid")] + list(args),
                env=dict(client_env(self.work), FETCHMAILHOME=self.work))
        self.transcript = (r.stdout + r.stderr).decode(errors="replace")
        return r

    def check_delivered(self):
        got = []
        for n in sorted(os.listdir(self.out)):
            with open(os.path.join(self.out, n), "rb") as f:
                got.append(f.read())
            os.unlink(os.path.join(self.out, n))
        self.assertEqual(len(got), len(self.names), self.transcript[-3000:])
        files = maildir_files(self.d, USER)
        for data, name in zip(got, self.names):
            _, rest = strip_added_fields(data, ["Received"])
            self.assertEqual(rest, crlf_to_lf(pop3_size(files[name])), "message %s" % name)
        self.assertNotIn("not the expected length", self.transcript)

    def ssl_options(self, extra=""):
        return ('sslcertck sslcertfile "%s" sslcommonname "mail.example.org" %s'
                % (self.ca, extra))

    def test_implicit_ssl(self):
        r = self.fetchmail(self.port(), "ssl " + self.ssl_options())
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.assertIn("Issuer CommonName: fastpop test CA", self.transcript)
        self.check_delivered()
        self.assertNotIn("STLS", self.transcript)
        self.assertIn(("alice", "TLSv1.3"), self.tls_sessions())
        # The certificate is really checked: a name it does not carry fails.
        r = self.fetchmail(self.port(), "ssl " + self.ssl_options().replace(
            "mail.example.org", "wrong.example.org"))
        self.assertNotEqual(r.returncode, 0, self.transcript[-3000:])
        self.assertEqual(os.listdir(self.out), [])

    def test_stls_sslproto(self):
        r = self.fetchmail(self.d.port, self.ssl_options('sslproto "TLS1.2+"'))
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.assertIn("STLS", self.transcript)
        self.check_delivered()
        self.assertTrue(self.tls_sessions(), self.d.log()[-2000:])
        self.assert_no_clear_login()
        # The command line form: --sslproto, with the certificate checked.
        r = self.fetchmail(self.d.port, self.ssl_options(), "--sslproto", "TLS1.2+")
        self.assertEqual(r.returncode, 0, self.transcript[-3000:])
        self.assertIn("STLS", self.transcript)
        self.check_delivered()
        self.assert_no_clear_login()


# --- getmail6 -----------------------------------------------------------------------

class Getmail(TlsClientTest):

    def test_ssl_retriever_with_ca(self):
        dest = os.path.join(self.work, "dest")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        gmdir = os.path.join(self.work, "getmail")
        os.mkdir(gmdir)
        user_line = ""
        if IS_ROOT:
            user_line = "user = %s\n" % MAIL_USER
            uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
            for base, _, _ in os.walk(dest):
                os.chown(base, uid, gid)
        rc = os.path.join(self.work, "getmailrc")
        with open(rc, "w") as f:
            f.write("[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\n"
                    "port = %d\nusername = %s\npassword = %s\nca_certs = %s\n\n"
                    "[destination]\ntype = Maildir\npath = %s/\n%s\n"
                    "[options]\nread_all = true\ndelete = false\nverbose = 2\n"
                    % (self.port(), USER, PASSWORD, self.ca, dest, user_line))
        os.chmod(rc, 0o600)
        r = run([require("getmail"), "--getmaildir", gmdir, "--rcfile", rc],
                env=client_env(self.work))
        transcript = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, transcript[-3000:])
        got = {}
        for sub in ("new", "cur"):
            for n in os.listdir(os.path.join(dest, sub)):
                with open(os.path.join(dest, sub, n), "rb") as f:
                    data = f.read()
                m = re.search(rb"msgid:(\S+?);", data[:2000])
                self.assertIsNotNone(m, data[:400])
                got[m.group(1).decode()] = data
        self.assertEqual(sorted(got), sorted(uidl(n) for n in self.names), transcript[-3000:])
        files = maildir_files(self.d, USER)
        for name in self.names:
            _, rest = strip_added_fields(got[uidl(name)],
                                         ["Return-Path", "Delivered-To", "Received"])
            self.assertEqual(rest, crlf_to_lf(pop3_size(files[name])), "message %s" % name)
        self.assertIn(("alice", "TLSv1.3"), self.tls_sessions())


# --- poplib -------------------------------------------------------------------------

class Poplib(TlsClientTest):

    def check_session(self, p):
        wires = [self.wire(n) for n in self.names]
        self.assertEqual(p.stat(), (len(wires), sum(len(w) for w in wires)))
        for i, w in enumerate(wires):
            resp, lines, octets = p.retr(i + 1)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            self.assertEqual(b"\r\n".join(lines) + b"\r\n", w, "message %d" % (i + 1))
            self.assertEqual(octets, len(w))
        self.assertEqual(p.uidl()[1], [b"%d %s" % (i + 1, uidl(n).encode())
                                       for i, n in enumerate(self.names)])
        self.assertTrue(p.quit().startswith(b"+OK"))

    def test_pop3_ssl(self):
        ctx = client_context(self.ca)
        p = poplib.POP3_SSL("127.0.0.1", self.port(), context=ctx, timeout=20)
        self.addCleanup(p.close)
        self.assertEqual(p.getwelcome(), b"+OK fastpop ready.")
        caps = p.capa()
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        self.check_session(p)

    def test_stls(self):
        ctx = client_context(self.ca)
        p = poplib.POP3("127.0.0.1", self.d.port, timeout=20)
        self.addCleanup(p.close)
        caps = p.capa()
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        with self.assertRaises(poplib.error_proto) as cm:
            p.user(USER)
        self.assertTrue(cm.exception.args[0].startswith(b"-ERR [AUTH]"), cm.exception.args)
        self.assertEqual(p.stls(ctx), b"+OK Begin TLS negotiation")
        self.assertIsInstance(p.sock, ssl.SSLSocket)
        caps = p.capa()
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        self.assertTrue(p.user(USER).startswith(b"+OK"))
        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
        self.check_session(p)
        # A wrong CA makes stls() fail: verification happens.
        other = client_context()
        other.verify_mode = ssl.CERT_REQUIRED
        other.check_hostname = True
        q = poplib.POP3("127.0.0.1", self.d.port, timeout=20)
        with self.assertRaises(ssl.SSLCertVerificationError):
            q.stls(other)
        try:
            q.close()
        except OSError:
            pass


# --- openssl s_client ------------------------------------------------------------------

class SClient(TlsClientTest):

    def _run_with_input(self, port, script, args):
        import subprocess
        try:
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                "-CAfile", self.ca, "-verify_return_error",
                                "-verify_ip", "127.0.0.1", "-servername", "mail.example.org",
                                "-crlf", "-quiet"] + list(args),
                               input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=client_env(self.work), timeout=30)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("s_client timed out: %r %r" % (e.stdout, e.stderr))
        return r

    def check(self, r, starttls):
        out = r.stdout
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"verify return:1", r.stderr)
        lines = out.split(b"\r\n")
        # s_client -starttls pop3 eats the greeting and the STLS answer itself.
        if not starttls:
            self.assertEqual(lines[0], b"+OK fastpop ready.")
            lines = lines[1:]
        self.assertTrue(lines[0].startswith(b"+OK"), out[:300])          # USER
        self.assertTrue(lines[1].startswith(b"+OK Logged in"), out[:300])  # PASS
        wires = [self.wire(n) for n in self.names]
        self.assertEqual(lines[2], b"+OK %d %d" % (len(wires), sum(len(w) for w in wires)))
        self.assertTrue(lines[3].startswith(b"+OK"), lines[3])
        body = b"\r\n".join(lines[4:])
        # The dot-stuffed message, the terminator, the QUIT answer.
        stuffed = b"\r\n".join((b"." + l if l.startswith(b".") else l)
                               for l in wires[0][:-2].split(b"\r\n"))
        self.assertTrue(body.startswith(stuffed + b"\r\n.\r\n+OK"), body[:500])

    def test_starttls_pop3(self):
        r = self._run_with_input(self.d.port, ("USER %s\nPASS %s\nSTAT\nRETR 1\nQUIT\n" % (
            USER, PASSWORD)).encode(), ["-starttls", "pop3"])
        self.check(r, starttls=True)
        self.assertTrue(self.tls_sessions())
        self.assert_no_clear_login()

    def test_implicit(self):
        r = self._run_with_input(self.port(), ("USER %s\nPASS %s\nSTAT\nRETR 1\nQUIT\n" % (
            USER, PASSWORD)).encode(), [])
        self.check(r, starttls=False)


if __name__ == "__main__":
    main()

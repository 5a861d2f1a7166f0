"""TLS end to end (issue 8), spoken by Python's ssl module against the real
fastpopd: STLS and implicit TLS, STARTTLS injection, the plaintext policy,
protocol versions (the rest is in test_tls_sessions.py).

Certificates come from a test CA made per test class (tls_fixture.py).
"""
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest
import base64

from fastpop_harness import BIN, DaemonTest, Pop3, pop3_size, wait_until, main
from tls_fixture import (V12, V13, TlsTest, capa, client_context, client_hello_bytes,
                         der_info, legacy_context, login, nothing_arrives, peer_info,
                         plain_b64, sasl_mechs, starttls, tls_connect, worker_of)

USER = "alice"
PASSWORD = "alice-secret"


# --- STLS -----------------------------------------------------------------------

class Stls(TlsTest):
    """Default policy (plaintext_auth unset = no), STLS on the plain port."""

    def plain(self, **kw):
        p = self.d.connect(**kw)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        return p

    def test_starttls_injection_pipelined_capa_discarded(self):
        ctx = client_context(self.ca)
        p = self.plain()
        p.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One segment: the CAPA must be thrown away with the pre-TLS input.
        p.send(b"STLS\r\nCAPA\r\n")
        self.assertEqual(p.line(), "+OK Begin TLS negotiation")
        # Nothing else in the clear (the server waits for our ClientHello).
        self.assertEqual(p.buf, b"")
        self.assertTrue(nothing_arrives(p, 0.5))
        p.sock = ctx.wrap_socket(p.sock, server_hostname="127.0.0.1")
        self.assertIn(p.sock.version(), ("TLSv1.2", "TLSv1.3"))
        # Inside TLS: no unprompted CAPA answer (nor a greeting after STLS).
        self.assertTrue(nothing_arrives(p, 1.5))
        caps = capa(p)
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        # Exactly one CAPA answer came: the next command gets its own reply.
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertEqual(p.buf, b"")
        login(p)
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_injection_split_ignored_after_handshake(self):
        # A pipelined command the server has not read yet when it answers STLS
        # would be read as a TLS record: the handshake must fail, never run it.
        p = self.plain()
        p.send(b"STLS\r\n")
        self.assertEqual(p.line(), "+OK Begin TLS negotiation")
        p.send(b"CAPA\r\n")
        self.assertTrue(p.closed_by_server(5))
        self.assertNotIn(b"+OK", p.buf)
        line = self.session_line(p.sock.getsockname()[1])
        self.assertIn("reason=tls-handshake-failed", line)

    def test_stls_inside_tls_refused(self):
        ctx = client_context(self.ca)
        p = self.plain()
        starttls(p, ctx)
        r = p.cmd("STLS")
        self.assertTrue(r.startswith("-ERR"), r)
        # Still a working TLS session.
        login(p)
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        p.cmd("QUIT")
        # Implicit TLS: STLS neither offered nor accepted.
        q = tls_connect(self.port(), ctx)
        self.addCleanup(q.close)
        self.assertEqual(q.line(), "+OK fastpop ready.")
        caps = capa(q)
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        r = q.cmd("STLS")
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertEqual(q.cmd("NOOP"), "+OK")

    def test_stls_after_login_refused(self):
        ctx = client_context(self.ca)
        p = self.plain()
        starttls(p, ctx)
        login(p)
        self.assertNotIn("STLS", capa(p))
        r = p.cmd("STLS")
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_quit_over_tls_sends_close_notify(self):
        ctx = client_context(self.ca)
        for via_stls in (False, True):
            if via_stls:
                p = self.plain()
                starttls(p, ctx)
            else:
                p = tls_connect(self.port(), ctx)
                self.addCleanup(p.close)
                self.assertEqual(p.line(), "+OK fastpop ready.")
            login(p)
            port = p.sock.getsockname()[1]
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            # unwrap() returns only once the server's close_notify has arrived.
            p.sock.settimeout(5)
            try:
                p.sock = p.sock.unwrap()
            except (ssl.SSLError, OSError) as e:
                self.fail("no close_notify after QUIT (stls=%s): %r" % (via_stls, e))
            line = self.session_line(port)
            self.assertIn("reason=quit", line)
            self.assertRegex(line, r" tls=TLSv1\.[23] ")


    def test_client_close_notify_answered(self):
        # RFC 8446 section 6.1: each party MUST send close_notify before
        # closing its write side (unless it sent an error alert); RFC 5246
        # 7.2.1: the other party MUST respond with a close_notify of its own.
        p = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        login(p)
        port = p.sock.getsockname()[1]
        p.sock.settimeout(5)
        try:
            p.sock = p.sock.unwrap()
        except (ssl.SSLError, OSError) as e:
            self.fail("the server closed without answering our close_notify: %r" % e)
        self.assertIn("reason=disconnected", self.session_line(port))


class StlsPlaintextAllowed(TlsTest):
    """plaintext_auth = yes: USER is accepted before STLS, and must be forgotten."""

    plaintext_auth = "yes"

    def test_user_forgotten_after_stls(self):
        ctx = client_context(self.ca)
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        p.send(b"USER alice\r\nSTLS\r\n")
        r = p.line()
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(p.line(), "+OK Begin TLS negotiation")
        self.assertEqual(p.buf, b"")
        p.sock = ctx.wrap_socket(p.sock, server_hostname="127.0.0.1")
        r = p.cmd("PASS " + PASSWORD)
        self.assertTrue(r.startswith("-ERR"), "PASS after STLS used the pre-TLS USER: %r" % r)
        self.assertNotEqual(p.cmd("STAT")[:3], "+OK")
        login(p)
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        p.cmd("QUIT")

    def test_stls_after_clear_login_refused(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertIn("STLS", capa(p))
        login(p)
        self.assertNotIn("STLS", capa(p))
        r = p.cmd("STLS")
        self.assertTrue(r.startswith("-ERR"), r)
        # The session goes on in the clear.
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))


class NoCertificate(DaemonTest):
    """No tls_cert: STLS neither offered nor accepted."""

    def test_stls_without_certificate(self):
        self.d.start()
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        caps = capa(p)
        self.assertNotIn("STLS", caps)
        r = p.cmd("STLS")
        self.assertTrue(r.startswith("-ERR"), r)
        # Still plain POP3 on the same connection.
        self.assertEqual(p.cmd("NOOP"), "+OK")
        login(p)
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))


# --- plaintext policy -------------------------------------------------------------

class PlaintextPolicy(TlsTest):
    """plaintext_auth unset (default no) and plaintext_trusted = 127.0.0.2/32."""

    tls_extra = "plaintext_trusted = 127.0.0.2/32\n"

    def connect(self, source=None):
        p = self.d.connect(source=(source, 0) if source else None)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        return p

    def assert_auth_refused(self, r, what):
        self.assertTrue(r.startswith("-ERR [AUTH]"), "%s: %r" % (what, r))

    def test_clear_refused_offered_ones_accepted_then_stls(self):
        p = self.connect()
        caps = capa(p)
        self.assertIn("STLS", caps)
        self.assertNotIn("USER", caps)
        mechs = [m.upper() for m in sasl_mechs(caps)]
        self.assertNotIn("PLAIN", mechs)
        self.assertNotIn("LOGIN", mechs)
        # Whatever CAPA offers must not be refused for being in the clear.
        for mech in mechs:
            r = p.cmd("AUTH " + mech)
            self.assertTrue(r.startswith("+"), "offered %s refused: %r" % (mech, r))
            r = p.cmd("*")
            self.assertTrue(r.startswith("-ERR"), r)
        # The AUTH listing agrees with CAPA.
        self.assertTrue(p.cmd("AUTH").startswith("+OK"))
        listed = [m.upper() for m in p.multiline().decode().split()]
        self.assertEqual(listed, mechs)
        self.assert_auth_refused(p.cmd("USER " + USER), "USER")
        self.assert_auth_refused(p.cmd("PASS " + PASSWORD), "PASS")
        self.assert_auth_refused(p.cmd("AUTH PLAIN " + plain_b64()), "AUTH PLAIN with IR")
        self.assert_auth_refused(p.cmd("AUTH PLAIN"), "AUTH PLAIN")
        self.assert_auth_refused(p.cmd("AUTH LOGIN"), "AUTH LOGIN")
        self.assert_auth_refused(p.cmd("auth plain " + plain_b64()), "auth plain (lower case)")
        # Nothing logged us in.
        r = p.cmd("STAT")
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertNotIn("login user=alice", self.d.log())

        # After STLS, on the same connection, all of them work.
        starttls(p, client_context(self.ca))
        caps = capa(p)
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        mechs = [m.upper() for m in sasl_mechs(caps)]
        self.assertIn("PLAIN", mechs)
        self.assertIn("LOGIN", mechs)
        login(p)
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        p.cmd("QUIT")

        q = self.connect()
        starttls(q, client_context(self.ca))
        r = q.cmd("AUTH PLAIN " + plain_b64())
        self.assertTrue(r.startswith("+OK"), r)
        q.cmd("QUIT")
        q = self.connect()
        starttls(q, client_context(self.ca))
        self.assertEqual(q.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6")
        self.assertEqual(q.cmd(base64.b64encode(USER.encode()).decode()), "+ UGFzc3dvcmQ6")
        r = q.cmd(base64.b64encode(PASSWORD.encode()).decode())
        self.assertTrue(r.startswith("+OK"), r)
        q.cmd("QUIT")

    def test_implicit_tls_allows_plaintext_mechanisms(self):
        p = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        caps = capa(p)
        self.assertIn("USER", caps)
        self.assertNotIn("STLS", caps)
        login(p)
        p.cmd("QUIT")

    def test_trusted_network_only(self):
        trusted = self.connect(source="127.0.0.2")
        caps = capa(trusted)
        self.assertIn("USER", caps)
        self.assertIn("STLS", caps)
        login(trusted)
        self.assertEqual(trusted.cmd("STAT"), "+OK 0 0")
        trusted.cmd("QUIT")
        trusted = self.connect(source="127.0.0.2")
        r = trusted.cmd("AUTH PLAIN " + plain_b64())
        self.assertTrue(r.startswith("+OK"), r)
        trusted.cmd("QUIT")

        untrusted = self.connect(source="127.0.0.1")
        caps = capa(untrusted)
        self.assertNotIn("USER", caps)
        self.assert_auth_refused(untrusted.cmd("USER " + USER), "USER from 127.0.0.1")
        self.assert_auth_refused(untrusted.cmd("AUTH PLAIN " + plain_b64()),
                                 "AUTH PLAIN from 127.0.0.1")
        # 127.0.0.3 is loopback too, but not listed.
        other = self.connect(source="127.0.0.3")
        self.assert_auth_refused(other.cmd("USER " + USER), "USER from 127.0.0.3")


# --- versions ----------------------------------------------------------------------

class Versions(TlsTest):
    """Defaults on a normal listener; a legacy_tls listener for old clients."""

    workers = 1
    listeners = {"tls": "tls", "legacy": "tls legacy_tls"}

    @classmethod
    def make_certs(cls, factory):
        return [factory.issue("mail-rsa", ["mail.example.org"]),
                factory.issue("pop-rsa", ["pop.example.net"])]

    def handshake_refused(self, port, ctx, hostname=None):
        p = Pop3(port, timeout=10)
        self.addCleanup(p.close)
        client_port = p.sock.getsockname()[1]
        with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            p.sock = ctx.wrap_socket(p.sock, server_hostname=hostname)
            p.line()
        line = self.session_line(client_port)
        self.assertIn("reason=tls-handshake-failed", line)

    def test_old_versions_refused_by_default(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            self.handshake_refused(self.port(), legacy_context(version))
            # Through STLS as well.
            p = self.d.connect()
            self.addCleanup(p.close)
            p.line()
            with self.assertRaises((ssl.SSLError, ConnectionResetError)):
                starttls(p, legacy_context(version))
                p.line()
        # The worker survived all that.
        q = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(q.close)
        self.assertEqual(q.line(), "+OK fastpop ready.")

    def test_legacy_listener_accepts_old_versions(self):
        for version, name in ((ssl.TLSVersion.TLSv1, "TLSv1"),
                              (ssl.TLSVersion.TLSv1_1, "TLSv1.1"),
                              (V12, "TLSv1.2"), (V13, "TLSv1.3")):
            for sni in (None, "mail.example.org", "pop.example.net"):
                with self.subTest(version=name, sni=sni):
                    ctx = legacy_context(version) if version < V12 else \
                        client_context(min_version=version, max_version=version)
                    try:
                        p = tls_connect(self.port("legacy"), ctx, server_hostname=sni)
                    except ssl.SSLError as e:
                        self.fail("%s with SNI %s refused on the legacy_tls listener: %r"
                                  % (name, sni, e))
                    self.addCleanup(p.close)
                    self.assertEqual(p.sock.version(), name)
                    self.assertEqual(p.line(), "+OK fastpop ready.")
                    if sni == "pop.example.net":
                        self.assertEqual(peer_info(p.sock)[1], self.certs[1].cn)
                    login(p)
                    port = p.sock.getsockname()[1]
                    self.assertTrue(p.cmd("QUIT").startswith("+OK"))
                    self.assertIn(" tls=%s " % name, self.session_line(port))

    def test_handshakes_counted_by_version(self):
        """popctl stats counts handshakes by negotiated version, and the failed ones."""
        def counts():
            r = subprocess.run([os.path.join(BIN, "popctl"), "-c", self.d.conf, "-s",
                                os.path.join(self.d.run_dir, "control.sock"), "--json",
                                "stats"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)["tls_handshakes"]

        before = counts()
        for version in (V12, V13, V13):
            p = tls_connect(self.port(), client_context(self.ca, min_version=version,
                                                        max_version=version))
            self.addCleanup(p.close)
            self.assertEqual(p.line(), "+OK fastpop ready.")
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        starttls(p, client_context(self.ca, min_version=V12, max_version=V12))
        self.assertTrue(p.cmd("NOOP").startswith("+OK"))
        self.handshake_refused(self.port(), legacy_context(ssl.TLSVersion.TLSv1))
        after = counts()
        self.assertEqual({k: after[k] - before[k] for k in after},
                         {"TLSv1.2": 2, "TLSv1.3": 2, "other": 0, "failed": 1})

    def test_version_in_session_log(self):
        for version, name in ((V12, "TLSv1.2"), (V13, "TLSv1.3")):
            p = tls_connect(self.port(), client_context(self.ca, min_version=version,
                                                        max_version=version))
            self.addCleanup(p.close)
            self.assertEqual(p.sock.version(), name)
            self.assertEqual(p.line(), "+OK fastpop ready.")
            port = p.sock.getsockname()[1]
            p.cmd("QUIT")
            self.assertIn(" tls=%s " % name, self.session_line(port))
        # Defaults: a modern cipher on TLS 1.2 (AEAD, forward secret).
        p = tls_connect(self.port(), client_context(self.ca, max_version=V12))
        self.addCleanup(p.close)
        cipher = p.sock.cipher()[0]
        self.assertRegex(cipher, r"^ECDHE-(RSA|ECDSA)-(AES\d+-GCM|CHACHA20-POLY1305)")
        # Server preference: the client's favourite (AES128) loses to AES256.
        p = tls_connect(self.port(), client_context(
            self.ca, max_version=V12, ciphers="ECDHE-RSA-AES128-GCM-SHA256:"
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"))
        self.addCleanup(p.close)
        self.assertEqual(p.sock.cipher()[0], "ECDHE-RSA-AES256-GCM-SHA384")
        # A client offering only CBC/SHA1 suites is refused.
        self.handshake_refused(self.port(), client_context(
            max_version=V12, ciphers="AES128-SHA:ECDHE-RSA-AES128-SHA"))


class MinVersion13(TlsTest):

    workers = 1
    tls_extra = "tls_min_version = TLSv1.3\n"

    def test_tls12_client_refused(self):
        ctx12 = client_context(self.ca, max_version=V12)
        p = Pop3(self.port(), timeout=10)
        self.addCleanup(p.close)
        port = p.sock.getsockname()[1]
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            p.sock = ctx12.wrap_socket(p.sock, server_hostname="127.0.0.1")
            p.line()
        self.assertIn("reason=tls-handshake-failed", self.session_line(port))
        # Through STLS too.
        q = self.d.connect()
        self.addCleanup(q.close)
        q.line()
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            starttls(q, ctx12)
            q.line()
        # TLS 1.3 is fine and logged as such.
        r = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(r.close)
        self.assertEqual(r.sock.version(), "TLSv1.3")
        self.assertEqual(r.line(), "+OK fastpop ready.")
        port = r.sock.getsockname()[1]
        r.cmd("QUIT")
        self.assertIn(" tls=TLSv1.3 ", self.session_line(port))


if __name__ == "__main__":
    main()

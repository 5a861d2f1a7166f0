"""TLS end to end, second half (split from test_tls.py so the two run in
parallel): SNI and key types, resumption across workers, ticket-key rotation,
certificate reload, handshake timeouts, garbage handshakes and a big RETR.
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
ECDSA_ONLY = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
RSA_ONLY = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"


class SniAndKeyTypes(TlsTest):

    workers = 1

    @classmethod
    def make_certs(cls, factory):
        # mail.example.org: RSA first (the default), then its ECDSA pair;
        # then pop.example.net (RSA).
        return [factory.issue("mail-rsa", ["mail.example.org"]),
                factory.issue("mail-ec", ["mail.example.org"], key_type="ec"),
                factory.issue("pop-rsa", ["pop.example.net", "*.pop.example.net"])]

    def served(self, sni, ctx=None, port=None):
        ctx = ctx or client_context()
        p = tls_connect(port or self.port(), ctx, server_hostname=sni)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        info = peer_info(p.sock)
        p.cmd("QUIT")
        return info

    def test_sni_picks_certificate(self):
        mail_rsa, mail_ec, pop = self.certs
        # Verified by name through the CA: the right certificate for each name.
        for name in ("mail.example.org", "pop.example.net"):
            p = tls_connect(self.port(), client_context(self.ca), server_hostname=name)
            self.addCleanup(p.close)
            self.assertEqual(p.line(), "+OK fastpop ready.")
            p.cmd("QUIT")
        self.assertEqual(self.served("pop.example.net")[:2], (pop.serial, pop.cn))
        self.assertEqual(self.served("POP.Example.NET")[:2], (pop.serial, pop.cn))
        # The wildcard covers exactly one label.
        self.assertEqual(self.served("eu.pop.example.net")[:2], (pop.serial, pop.cn))
        self.assertIn(self.served("a.b.pop.example.net")[:2],
                      [(mail_rsa.serial, mail_rsa.cn), (mail_ec.serial, mail_ec.cn)])
        self.assertIn(self.served("mail.example.org")[:2],
                      [(mail_rsa.serial, mail_rsa.cn), (mail_ec.serial, mail_ec.cn)])
        # Over STLS as well.
        p = self.d.connect()
        self.addCleanup(p.close)
        p.line()
        starttls(p, client_context(self.ca), server_hostname="pop.example.net")
        self.assertEqual(peer_info(p.sock)[:2], (pop.serial, pop.cn))

    def test_unknown_name_gets_first_certificate(self):
        mail_rsa, mail_ec, pop = self.certs
        for sni in ("unknown.example.com", None):
            with self.subTest(sni=sni):
                serial, cn, kind = self.served(sni, client_context(max_version=V12,
                                                                   ciphers=RSA_ONLY))
                self.assertEqual((serial, cn), (mail_rsa.serial, mail_rsa.cn))
                # The default group has both key types.
                self.assertEqual(self.served(sni, client_context(
                    max_version=V12, ciphers=ECDSA_ONLY))[:2], (mail_ec.serial, mail_ec.cn))

    def test_key_type_by_client_ciphers(self):
        mail_rsa, mail_ec, pop = self.certs
        self.assertEqual(self.served("mail.example.org", client_context(
            max_version=V12, ciphers=ECDSA_ONLY)), (mail_ec.serial, mail_ec.cn, "ec"))
        self.assertEqual(self.served("mail.example.org", client_context(
            max_version=V12, ciphers=RSA_ONLY)), (mail_rsa.serial, mail_rsa.cn, "rsa"))
        # With verification on.
        p = tls_connect(self.port(), client_context(self.ca, max_version=V12,
                                                    ciphers=ECDSA_ONLY),
                        server_hostname="mail.example.org")
        self.addCleanup(p.close)
        self.assertIn("ECDSA", p.sock.cipher()[0])
        self.assertEqual(p.line(), "+OK fastpop ready.")
        p.cmd("QUIT")
        # pop.example.net has no ECDSA key: an ECDSA-only client is refused, an
        # RSA client gets pop's certificate.
        self.assertEqual(self.served("pop.example.net", client_context(
            max_version=V12, ciphers=RSA_ONLY)), (pop.serial, pop.cn, "rsa"))
        q = Pop3(self.port(), timeout=10)
        self.addCleanup(q.close)
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            q.sock = client_context(max_version=V12, ciphers=ECDSA_ONLY).wrap_socket(
                q.sock, server_hostname="pop.example.net")
            q.line()


# --- resumption ----------------------------------------------------------------------

class Resumption(TlsTest):

    workers = 2

    def resume_on_other_worker(self, version):
        ctx = client_context(self.ca, min_version=version, max_version=version)
        first = tls_connect(self.port(), ctx)
        self.addCleanup(first.close)
        self.assertEqual(first.line(), "+OK fastpop ready.")
        session = first.sock.session
        self.assertIsNotNone(session)
        self.assertFalse(first.sock.session_reused)
        first_port = first.sock.getsockname()[1]
        first.cmd("QUIT")
        origin = worker_of(self.session_line(first_port))

        seen = []
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            # Several at once, so the workers share them out.
            batch = []
            for _ in range(3):
                p = tls_connect(self.port(), ctx, session=session)
                self.addCleanup(p.close)
                batch.append(p)
            for p in batch:
                self.assertEqual(p.line(), "+OK fastpop ready.")
                self.assertTrue(p.sock.session_reused,
                                "%s session not resumed (%d done before)" % (version, len(seen)))
                self.assertEqual(p.sock.version(), ctx.maximum_version.name.replace("_", "."))
            for p in batch:
                port = p.sock.getsockname()[1]
                p.cmd("QUIT")
                p.close()
                seen.append(worker_of(self.session_line(port)))
            if any(w != origin for w in seen):
                return
        self.fail("no resumed connection landed on another worker than %d: %r" % (origin, seen))

    def test_resume_tls13_on_other_worker(self):
        self.resume_on_other_worker(V13)

    def test_resume_tls12_on_other_worker(self):
        self.resume_on_other_worker(V12)


class TicketKeyRotation(TlsTest):
    """Ticket keys rotate every tls_ticket_lifetime (here the minimum, 10 s): a ticket
    resumes after one rotation (the previous key still decrypts), not after two."""

    workers = 2
    tls_extra = "tls_ticket_lifetime = 10s\n"
    PERIOD = 10.0

    def at_phase(self, period, phase):
        """Wait until period (time // PERIOD) has run phase seconds."""
        start = period * self.PERIOD + phase
        wait_until(lambda: time.time() >= start, 3 * self.PERIOD,
                   what="%.1fs into period %d" % (phase, period))

    def connect(self, ctx, session=None):
        p = tls_connect(self.port(), ctx, session=session)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        result = p.sock.session, p.sock.session_reused
        p.cmd("QUIT")
        p.close()
        return result

    def rotation(self, version):
        ctx = client_context(self.ca, min_version=version, max_version=version)
        # Late in a period, so that two rotations later the ticket is younger than the
        # session timeout (2 periods): only its key's age can refuse it.
        now = time.time()
        period = int(now // self.PERIOD)
        if now - period * self.PERIOD > 6.0:
            period += 1
        self.at_phase(period, 6.0)
        ticket, reused = self.connect(ctx)
        self.assertIsNotNone(ticket)
        self.assertFalse(reused)
        self.assertEqual(int(time.time() // self.PERIOD), period, "the test machine is too slow")
        # Next period, new key: the previous one still decrypts, in every worker.
        self.at_phase(period + 1, 0.5)
        for _ in range(4):
            self.assertTrue(self.connect(ctx, ticket)[1], "not resumed after one rotation")
        # Two rotations: its key is gone; a full handshake, which still works.
        self.at_phase(period + 2, 0.5)
        for _ in range(4):
            self.assertFalse(self.connect(ctx, ticket)[1], "resumed after two rotations")
        self.assertLess(time.time() - period * self.PERIOD - 6.0, 2 * self.PERIOD,
                        "the ticket outlived the session timeout: the test proves nothing")

    def test_rotation_tls13(self):
        self.rotation(V13)

    def test_rotation_tls12(self):
        self.rotation(V12)


# --- reload ---------------------------------------------------------------------------

class Reload(TlsTest):

    workers = 2

    def setUp(self):
        import tempfile
        # Per-test copies: the test replaces the files the config names.
        self.tdir = tempfile.mkdtemp(dir=self.factory.dir)
        os.chmod(self.tdir, 0o755)
        self.certs = [self.factory.issue("server", ["mail.example.org"], directory=self.tdir)]
        super().setUp()

    def replace_cert(self, name, key_type="rsa"):
        new = self.factory.issue(name, ["mail.example.org"], key_type=key_type,
                                 directory=self.tdir)
        os.replace(new.cert, self.certs[0].cert)
        os.replace(new.key, self.certs[0].key)
        return new

    def reload(self, count):
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reloaded ", count=count, timeout=15)

    def new_connection_cert(self):
        p = tls_connect(self.port(), client_context(self.ca), server_hostname="mail.example.org")
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        info = peer_info(p.sock)
        p.cmd("QUIT")
        return info

    def test_reload_new_certificate_keeps_sessions(self):
        old = self.certs[0]
        self.d.deliver(USER, b"Subject: one\n\nbody\n")
        self.assertEqual(self.new_connection_cert()[:2], (old.serial, old.cn))
        ctx = client_context(self.ca)
        session = tls_connect(self.port(), ctx)
        self.addCleanup(session.close)
        self.assertEqual(session.line(), "+OK fastpop ready.")
        ticket = session.sock.session
        login(session)
        self.assertEqual(session.cmd("STAT"), "+OK 1 22")
        stls = self.d.connect()
        self.addCleanup(stls.close)
        stls.line()
        starttls(stls, ctx)

        new = self.replace_cert("second")
        self.assertNotEqual(new.serial, old.serial)
        self.reload(1)
        self.assertNotIn("reload failed", self.d.log())
        # The open sessions go on (TLS state intact).
        self.assertEqual(session.cmd("NOOP"), "+OK")
        self.assertEqual(session.cmd("STAT"), "+OK 1 22")
        r = session.cmd("RETR 1")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(session.multiline(), b"Subject: one\r\n\r\nbody\r\n")
        self.assertEqual(stls.cmd("NOOP"), "+OK")
        self.assertNotIn("STLS", capa(stls))
        # New connections get the new certificate, whichever worker takes them.
        for _ in range(4):
            self.assertEqual(self.new_connection_cert()[:2], (new.serial, new.cn))
        # A ticket from before the reload still resumes (keys carried over).
        p = tls_connect(self.port(), ctx, session=ticket)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertTrue(p.sock.session_reused, "pre-reload ticket not accepted after reload")
        p.cmd("QUIT")
        self.assertTrue(session.cmd("QUIT").startswith("+OK"))
        self.assertTrue(stls.cmd("QUIT").startswith("+OK"))

    def test_broken_certificate_refused(self):
        old = self.certs[0]
        with open(self.certs[0].cert + ".tmp", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 at all\n"
                    "-----END CERTIFICATE-----\n")
        os.replace(self.certs[0].cert + ".tmp", self.certs[0].cert)
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reload failed", timeout=15)
        failed = [l for l in self.d.log().splitlines() if "reload failed" in l]
        self.assertIn(self.certs[0].cert, failed[0])
        self.assertNotIn("reloaded ", self.d.log())
        # The old certificate is still served, by live workers.
        for _ in range(3):
            self.assertEqual(self.new_connection_cert()[:2], (old.serial, old.cn))
        # fastpopd -t loads the certificates: exit 1, naming the file.
        r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", self.d.conf],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(self.certs[0].cert.encode(), r.stderr)

    def test_mismatched_key_refused(self):
        old = self.certs[0]
        other = self.factory.issue("other", ["mail.example.org"], directory=self.tdir)
        os.replace(other.cert, self.certs[0].cert)   # new cert, old key
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("reload failed", timeout=15)
        failed = [l for l in self.d.log().splitlines() if "reload failed" in l][0]
        self.assertIn(self.certs[0].key, failed)
        self.assertEqual(self.new_connection_cert()[:2], (old.serial, old.cn))
        r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", self.d.conf],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        # Fixed again (the matching key): the reload goes through.
        os.replace(other.key, self.certs[0].key)
        self.reload(1)
        self.assertEqual(self.new_connection_cert()[:2], (other.serial, other.cn))


# --- handshake timeout, garbage -------------------------------------------------------------

class HandshakeTimeout(TlsTest):

    workers = 1
    tls_extra = "tls_handshake_timeout = 2s\n"

    def test_silent_client_closed(self):
        p = Pop3(self.port(), timeout=10)
        self.addCleanup(p.close)
        port = p.sock.getsockname()[1]
        t0 = time.monotonic()
        self.assertTrue(p.closed_by_server(8), "still open after 8 s")
        took = time.monotonic() - t0
        self.assertGreater(took, 1.5)
        self.assertLess(took, 5.0)
        self.assertEqual(p.buf, b"")
        self.assertIn("reason=tls-timeout", self.session_line(port))

    def test_trickling_handshake_still_times_out(self):
        # One byte of a ClientHello every 0.4 s: activity must not extend the
        # handshake deadline.
        hello = client_hello_bytes()
        p = Pop3(self.port(), timeout=10)
        self.addCleanup(p.close)
        port = p.sock.getsockname()[1]
        t0 = time.monotonic()
        closed = False
        for b in hello[:-1]:
            try:
                p.send(bytes([b]))
            except OSError:
                closed = True
                break
            if p.closed_by_server(0.4):
                closed = True
                break
            if time.monotonic() - t0 > 8:
                break
        self.assertTrue(closed, "a trickling handshake was kept open for %.1fs"
                        % (time.monotonic() - t0))
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIn("reason=tls-timeout", self.session_line(port))

    def test_silent_after_stls(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        port = p.sock.getsockname()[1]
        p.line()
        self.assertEqual(p.cmd("STLS"), "+OK Begin TLS negotiation")
        t0 = time.monotonic()
        self.assertTrue(p.closed_by_server(8), "still open after 8 s")
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertIn("reason=tls-timeout", self.session_line(port))

    def test_stalled_handshake_does_not_block_others(self):
        hello = client_hello_bytes()
        self.assertGreater(len(hello), 40)
        stalled = Pop3(self.port(), timeout=10)
        self.addCleanup(stalled.close)
        stalled_port = stalled.sock.getsockname()[1]
        stalled.send(hello[:len(hello) // 2])   # half a ClientHello, then nothing
        time.sleep(0.2)
        self.d.deliver(USER, b"Subject: x\n\n" + b"y" * 100000 + b"\n")
        t0 = time.monotonic()
        p = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        login(p)
        r = p.cmd("RETR 1")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertEqual(len(p.multiline()), len(b"Subject: x\r\n\r\n") + 100002)
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        self.assertLess(time.monotonic() - t0, 1.5, "a full session waited for the stalled one")
        # The stalled one is still waiting, and then times out.
        self.assertNotIn("port=%d reason" % stalled_port, self.d.log())
        self.assertTrue(stalled.closed_by_server(8))
        self.assertIn("reason=tls-timeout", self.session_line(stalled_port))


class Garbage(TlsTest):

    workers = 1

    def test_garbage_instead_of_client_hello(self):
        pids = self.d.workers_pids()
        self.assertEqual(len(pids), 1)
        for payload in (b"GET / HTTP/1.0\r\n\r\n", b"USER alice\r\n",
                        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00" + b"\xff" * 64,
                        b"\x16\x03\x01\xff\xff" + os.urandom(300)):
            with self.subTest(payload=payload[:12]):
                p = Pop3(self.port(), timeout=10)
                self.addCleanup(p.close)
                port = p.sock.getsockname()[1]
                try:
                    p.send(payload)
                except OSError:
                    pass
                self.assertTrue(p.closed_by_server(5), "not closed after %r" % payload[:20])
                self.assertNotIn(b"+OK", p.buf)
                self.assertIn("reason=tls-handshake-failed", self.session_line(port))
        # Garbage after STLS too.
        p = self.d.connect()
        self.addCleanup(p.close)
        port = p.sock.getsockname()[1]
        p.line()
        self.assertEqual(p.cmd("STLS"), "+OK Begin TLS negotiation")
        p.send(b"CAPA\r\nUSER alice\r\n" * 4)
        self.assertTrue(p.closed_by_server(5))
        self.assertEqual(p.buf.count(b"+OK"), 0, p.buf)
        self.assertIn("reason=tls-handshake-failed", self.session_line(port))
        self.assertIn("TLS handshake failed", self.d.log())
        # Same worker, still serving.
        self.assertEqual(self.d.workers_pids(), pids)
        q = tls_connect(self.port(), client_context(self.ca))
        self.addCleanup(q.close)
        self.assertEqual(q.line(), "+OK fastpop ready.")
        login(q)
        q.cmd("QUIT")


# --- big RETR -------------------------------------------------------------------------------

def big_body(size=4 * 1024 * 1024):
    import random
    rnd = random.Random(8)
    lines = [b"From: big@example.org", b"Subject: big over TLS", b""]
    total = 0
    i = 0
    while total < size:
        kind = i % 11
        if kind == 0:
            line = b"." * rnd.randint(1, 3) + b"dot line %d" % i
        elif kind == 1:
            line = b"."
        else:
            line = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 \xe9\xff.")
                         for _ in range(rnd.randint(0, 300)))
        lines.append(line)
        total += len(line) + 1
        i += 1
    return b"\n".join(lines) + b"\nend\n"


class BigRetr(TlsTest):

    workers = 1

    def test_big_retr_over_tls(self):
        data = big_body()
        self.d.deliver(USER, data)
        wire = pop3_size(data)
        want = hashlib.sha256(wire).hexdigest()
        for via in ("implicit", "stls"):
            with self.subTest(via=via):
                if via == "implicit":
                    p = tls_connect(self.port(), client_context(self.ca), timeout=30)
                    self.addCleanup(p.close)
                    self.assertEqual(p.line(), "+OK fastpop ready.")
                else:
                    p = self.d.connect(timeout=30)
                    self.addCleanup(p.close)
                    p.line()
                    starttls(p, client_context(self.ca))
                login(p)
                self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % len(wire))
                self.assertEqual(p.cmd("LIST 1"), "+OK 1 %d" % len(wire))
                r = p.cmd("RETR 1")
                self.assertTrue(r.startswith("+OK"), r)
                got = p.multiline()
                self.assertEqual(len(got), len(wire))
                self.assertEqual(hashlib.sha256(got).hexdigest(), want)
                # Pipelined after a big answer, still in step.
                p.send(b"NOOP\r\nRETR 1\r\nNOOP\r\n")
                self.assertEqual(p.line(), "+OK")
                self.assertTrue(p.line().startswith("+OK"))
                self.assertEqual(hashlib.sha256(p.multiline()).hexdigest(), want)
                self.assertEqual(p.line(), "+OK")
                self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_pipeline_larger_than_a_read_chunk(self):
        # 3000 commands in one TLS write (records of up to 16 KB): the server
        # reads 4 KB at a time, the rest waits decrypted inside OpenSSL where
        # epoll cannot see it.
        self.d.deliver(USER, b"Subject: s\n\nsmall\n")
        p = tls_connect(self.port(), client_context(self.ca), timeout=20)
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        login(p)
        n = 3000
        p.send(b"NOOP\r\n" * n)
        for i in range(n):
            self.assertEqual(p.line(), "+OK", "reply %d" % i)
        p.send(b"RETR 1\r\nLIST 1\r\n" * 300)
        for i in range(300):
            self.assertTrue(p.line().startswith("+OK"))
            self.assertEqual(p.multiline(), b"Subject: s\r\n\r\nsmall\r\n", i)
            self.assertEqual(p.line(), "+OK 1 21")
        self.assertTrue(nothing_arrives(p, 0.3))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))

    def test_slow_reader(self):
        data = big_body(3 * 1024 * 1024)
        self.d.deliver(USER, data)
        wire = pop3_size(data)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", self.port()))
        p = Pop3.__new__(Pop3)
        p.buf = b""
        p.sock = client_context(self.ca).wrap_socket(sock, server_hostname="127.0.0.1")
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        login(p)
        p.send(b"RETR 1\r\n")
        # Read slowly at first: the server's writes keep hitting a full socket.
        got = b""
        for _ in range(40):
            got += p.sock.recv(2048)
            time.sleep(0.02)
        p.buf = got
        self.assertTrue(p.line().startswith("+OK"))
        body = p.multiline()
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(wire).hexdigest())
        # Another session of the worker was served meanwhile (checked after).
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))


if __name__ == "__main__":
    main()

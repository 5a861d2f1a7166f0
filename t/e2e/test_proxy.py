"""PROXY protocol (issue 8): v1 and v2 headers before the greeting on a
`proxy_protocol` listener, the client address from the header in the session
log and the per-IP limit, invalid/truncated/untrusted headers closed without a
word, PROXY + implicit TLS with the ClientHello in the header's segment, and
HAProxy (`send-proxy-v2`) in front of fastpop.

Reference: haproxy doc/proxy-protocol.txt as summarised in
shared/reference/interop.md section 5.
"""
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from fastpop_harness import BIN, Daemon, Pop3, free_port, main, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PROXY_TIMEOUT = 2          # proxy_timeout of the shared daemon, seconds
PER_IP = 2                 # max_connections_per_ip of the shared daemon
MESSAGE = b"From: bob@example.org\r\nSubject: via proxy\r\n\r\nHello through the proxy.\r\n"


# --- header builders ----------------------------------------------------------
def v1(proto, src=None, dst=None, sport=None, dport=None):
    if proto == "UNKNOWN" and src is None:
        return b"PROXY UNKNOWN\r\n"
    return ("PROXY %s %s %s %s %s\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(cmd=1, fam=0x11, body=b"", ver=2, length=None):
    n = len(body) if length is None else length
    return V2_SIG + bytes([(ver << 4) | cmd, fam]) + struct.pack("!H", n) + body


def addr4(src, dst, sport, dport):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def addr6(src, dst, sport, dport):
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) +
            struct.pack("!HH", sport, dport))


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def crc32c(data):
    """CRC32C (Castagnoli), RFC 4960 appendix B, bitwise (headers are tiny)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def v2_with_crc(cmd, fam, body_without_crc):
    """A v2 header whose last TLV is a correct CRC32C over the whole header."""
    body = body_without_crc + tlv(0x03, b"\0\0\0\0")
    zeroed = v2(cmd, fam, body)
    return zeroed[:-4] + struct.pack("!I", crc32c(zeroed))


def drain(sock, timeout):
    """Read until the peer closes (EOF or reset) or timeout: (bytes, closed)."""
    data = b""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data, True
    except socket.timeout:
        pass
    return data, False


class TlsClient:
    """POP3 over TLS with memory BIOs: the caller controls every byte sent,
    so the PROXY header and the ClientHello leave in one send()."""

    def __init__(self, port, header, cafile, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=source)
        ctx = ssl.create_default_context(cafile=cafile)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="127.0.0.1")
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = self.out.read()
        assert hello[:1] == b"\x16", hello[:8]
        self.sock.sendall(header + hello)      # one segment: header + ClientHello
        self._run(self.obj.do_handshake)
        self.buf = b""

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _run(self, fn, *args):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                result = fn(*args)
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("server closed the TLS connection")
                self.inc.write(data)
        raise AssertionError("TLS exchange timed out")

    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self._run(self.obj.read, 65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def cmd(self, command):
        self._run(self.obj.write, (command + "\r\n").encode())
        return self.line()

    def close(self):
        self.sock.close()


class ProxyProtocol(unittest.TestCase):
    """One daemon for all: a plain listener (the harness's readiness probe), a
    proxy_protocol listener and a proxy_protocol + tls listener."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="fastpop-proxy-cert-")
        os.chmod(cls.certdir, 0o755)
        cls.cert = os.path.join(cls.certdir, "cert.pem")
        cls.key = os.path.join(cls.certdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-keyout", cls.key, "-out", cls.cert, "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        os.chmod(cls.key, 0o644)
        cls.pport = free_port()
        cls.tport = free_port()
        extra = ("listen = 127.0.0.1:%d proxy_protocol\n"
                 "listen = 127.0.0.1:%d proxy_protocol tls\n"
                 "proxy_trusted = 127.0.0.1/32\n"
                 "proxy_timeout = %ds\n"
                 "max_connections_per_ip = %d\n"
                 "tls_cert = %s\n"
                 "tls_key = %s\n" % (cls.pport, cls.tport, PROXY_TIMEOUT, PER_IP,
                                     cls.cert, cls.key))
        cls.d = Daemon(workers=2, extra_config=extra)
        try:
            cls.d.start()
        except Exception:
            print(cls.d.log()[-4000:])
            cls.d.cleanup()
            shutil.rmtree(cls.certdir, ignore_errors=True)
            raise
        for _ in range(3):
            cls.d.deliver("alice", MESSAGE)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.cleanup()
        finally:
            shutil.rmtree(cls.certdir, ignore_errors=True)

    def setUp(self):
        self.log_start = len(self.d.log())
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        failed = any(e for _, e in getattr(self._outcome, "errors", []) or [])
        if failed or (hasattr(self._outcome, "result") and any(
                t is self for t, _ in self._outcome.result.failures + self._outcome.result.errors)):
            print("---- fastpopd log (this test) ----\n" + self.new_log()[-5000:])

    # --- helpers --------------------------------------------------------------
    def new_log(self):
        return self.d.log()[self.log_start:]

    def wait_new_log(self, text, timeout=10.0):
        return wait_until(lambda: text in self.new_log(), timeout,
                          what="log line %r:\n%s" % (text, self.new_log()[-3000:]))

    def open(self, port=None, source=None, nodelay=False):
        p = Pop3(port or self.pport, timeout=10, source=source)
        if nodelay:
            p.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p.real_port = p.sock.getsockname()[1]
        self.conns.append(p)
        return p

    def session(self, p, check_retr=False):
        """Greeting, login alice, STAT, (RETR 1), QUIT on a connection past its header."""
        greeting = p.line()
        self.assertEqual(greeting, "+OK fastpop ready.")
        self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        stat = p.cmd("STAT")
        self.assertRegex(stat, r"^\+OK \d+ \d+$")
        self.assertGreaterEqual(int(stat.split()[1]), 1, stat)
        if check_retr:
            self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
            self.assertEqual(p.multiline(), MESSAGE)
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()  # else quit_linger holds the log line

    def expect_session_log(self, ip, port, user="alice"):
        self.wait_new_log("session user=%s ip=%s port=%d reason=" % (user, ip, port))
        if user != "-":
            self.assertIn("login user=%s ip=%s " % (user, ip), self.new_log())

    def expect_rejected(self, p, reason="proxy-invalid", within=None,
                        msg="the server spoke before a valid PROXY header"):
        """Closed without a single byte sent; the log names the PROXY header
        (invalid) or the timeout, with the real address of the connection."""
        real_port = p.real_port
        start = time.monotonic()
        data, closed = drain(p.sock, within or PROXY_TIMEOUT + 3)
        elapsed = time.monotonic() - start
        self.assertEqual(data, b"", msg)
        self.assertTrue(closed, "connection still open after %.1fs" % elapsed)
        self.wait_new_log("session user=- ip=127.0.0.1 port=%d reason=%s " % (real_port, reason),
                          timeout=5)
        if reason == "proxy-invalid":
            self.assertIn("conn 127.0.0.1:%d: closed: PROXY header: " % real_port,
                          self.new_log())
        return elapsed

    # --- v1 -------------------------------------------------------------------
    def test_v1_tcp4_session_logs_header_address(self):
        p = self.open()
        p.send(v1("TCP4", "192.0.2.7", "203.0.113.1", 40001, 110))
        self.session(p, check_retr=True)
        self.expect_session_log("192.0.2.7", 40001)
        self.assertNotIn("ip=127.0.0.1 port=%d " % p.real_port, self.new_log())

    def test_v1_tcp6_session_logs_header_address(self):
        p = self.open()
        p.send(v1("TCP6", "2001:db8::7", "2001:db8::1", 40002, 110))
        self.session(p)
        self.expect_session_log("2001:db8::7", 40002)

    def test_v1_unknown_keeps_real_address(self):
        for header in (b"PROXY UNKNOWN\r\n",
                       b"PROXY UNKNOWN ffff:f::1 ffff:f::2 5000 110\r\n"):
            with self.subTest(header=header):
                p = self.open()
                p.send(header)
                self.session(p)
                self.expect_session_log("127.0.0.1", p.real_port)

    def test_v1_header_and_first_command_in_one_send(self):
        # A pipelining client: the USER behind the header must be kept and
        # answered after the greeting, not swallowed with the header.
        p = self.open()
        p.send(v1("TCP4", "192.0.2.8", "203.0.113.1", 40003, 110) + b"USER alice\r\n")
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertTrue(p.line().startswith("+OK"), "USER after the header was not answered")
        self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()  # else quit_linger holds the log line
        self.expect_session_log("192.0.2.8", 40003)

    def test_v1_longest_allowed_line_is_accepted(self):
        # 107 octets including CRLF is the protocol's maximum.
        header = b"PROXY UNKNOWN " + b"f" * (107 - 16) + b"\r\n"
        self.assertEqual(len(header), 107)
        p = self.open()
        p.send(header)
        self.session(p)
        self.expect_session_log("127.0.0.1", p.real_port)

    # --- v2 -------------------------------------------------------------------
    def test_v2_tcp4(self):
        p = self.open()
        p.send(v2(1, 0x11, addr4("192.0.2.21", "203.0.113.1", 40021, 110)))
        self.session(p)
        self.expect_session_log("192.0.2.21", 40021)

    def test_v2_tcp6(self):
        p = self.open()
        p.send(v2(1, 0x21, addr6("2001:db8:1::22", "2001:db8::1", 40022, 110)))
        self.session(p)
        self.expect_session_log("2001:db8:1::22", 40022)

    def test_v2_local_keeps_real_address(self):
        # LOCAL (health checks): no address, or an address block to be skipped
        # by its length - the real endpoints stand either way.
        for header in (v2(0, 0x00), v2(0, 0x11, addr4("192.0.2.23", "203.0.113.1", 40023, 110)),
                       v2(1, 0x00, tlv(0x04, b"x"))):
            with self.subTest(header=header):
                p = self.open()
                p.send(header)
                self.session(p)
                self.expect_session_log("127.0.0.1", p.real_port)
        self.assertNotIn("ip=192.0.2.23", self.new_log())

    def test_v2_local_health_check_then_close(self):
        # What a load balancer's check does: header, then goodbye. No error.
        p = self.open()
        real_port = p.real_port
        p.send(v2(0, 0x00))
        self.assertEqual(p.line(), "+OK fastpop ready.")
        p.close()
        self.wait_new_log("port=%d reason=" % real_port)
        self.assertNotIn("PROXY header", self.new_log())
        self.assertNotIn("port=%d reason=proxy-" % real_port, self.new_log())

    def test_v2_tlvs_are_skipped(self):
        ssl_tlv = tlv(0x20, bytes([0x07]) + struct.pack("!I", 0) +
                      tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client.example.org") +
                      tlv(0x23, b"TLS_AES_256_GCM_SHA384") + tlv(0x24, b"SHA256") +
                      tlv(0x25, b"RSA2048"))
        tlvs = (tlv(0x01, b"pop3") + tlv(0x02, b"mail.example.org") + tlv(0x04, b"\0" * 7) +
                tlv(0x05, b"u" * 128) + ssl_tlv + tlv(0xE0, b"custom") + tlv(0x04, b""))
        cases = [
            ("tcp4+tlvs", v2(1, 0x11, addr4("192.0.2.24", "203.0.113.1", 40024, 110) + tlvs),
             "192.0.2.24", 40024),
            ("tcp6+tlvs", v2(1, 0x21, addr6("2001:db8:2::25", "2001:db8::1", 40025, 110) + tlvs),
             "2001:db8:2::25", 40025),
            ("tcp4+crc32c", v2_with_crc(1, 0x11, addr4("192.0.2.26", "203.0.113.1", 40026, 110)
                                        + tlv(0x01, b"pop3")), "192.0.2.26", 40026),
        ]
        for name, header, ip, port in cases:
            with self.subTest(name):
                p = self.open()
                # The USER right behind the TLVs must not be taken for one.
                p.send(header + b"USER alice\r\n")
                self.assertEqual(p.line(), "+OK fastpop ready.")
                self.assertTrue(p.line().startswith("+OK"))
                self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
                self.assertTrue(p.cmd("QUIT").startswith("+OK"))
                p.close()  # else quit_linger holds the log line
                self.expect_session_log(ip, port)

    def test_v2_of_1024_octets_is_accepted(self):
        base = addr4("192.0.2.27", "203.0.113.1", 40027, 110)
        pad = 1024 - 16 - len(base) - 3
        header = v2(1, 0x11, base + tlv(0x04, b"\0" * pad))
        self.assertEqual(len(header), 1024)
        p = self.open()
        p.send(header + b"USER alice\r\n")
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()  # else quit_linger holds the log line
        self.wait_new_log("session user=alice ip=192.0.2.27 port=40027 reason=")

    # --- invalid headers -------------------------------------------------------
    def test_invalid_headers_are_closed_silently(self):
        a4 = addr4("192.0.2.30", "203.0.113.1", 40030, 110)
        cases = [
            ("garbage: a POP3 command", b"USER alice\r\n"),
            ("lower-case signature", b"proxy TCP4 192.0.2.30 203.0.113.1 40030 110\r\n"),
            ("lone LF", b"PROXY TCP4 192.0.2.30 203.0.113.1 40030 110\n"),
            ("lone CR inside", b"PROXY TCP4 192.0.2.30\r203.0.113.1 40030 110\r\n"),
            ("double space", b"PROXY TCP4  192.0.2.30 203.0.113.1 40030 110\r\n"),
            ("double space before port", b"PROXY TCP4 192.0.2.30 203.0.113.1  40030 110\r\n"),
            ("trailing space", b"PROXY TCP4 192.0.2.30 203.0.113.1 40030 110 \r\n"),
            ("port 65536", b"PROXY TCP4 192.0.2.30 203.0.113.1 65536 110\r\n"),
            ("port leading zero", b"PROXY TCP4 192.0.2.30 203.0.113.1 040030 110\r\n"),
            ("port sign", b"PROXY TCP4 192.0.2.30 203.0.113.1 +4003 110\r\n"),
            ("port hex", b"PROXY TCP4 192.0.2.30 203.0.113.1 0x10 110\r\n"),
            ("port missing", b"PROXY TCP4 192.0.2.30 203.0.113.1 40030\r\n"),
            ("bad IPv4", b"PROXY TCP4 192.0.2.300 203.0.113.1 40030 110\r\n"),
            ("IPv6 in TCP4", b"PROXY TCP4 2001:db8::30 2001:db8::1 40030 110\r\n"),
            ("IPv4 in TCP6", b"PROXY TCP6 192.0.2.30 203.0.113.1 40030 110\r\n"),
            ("unknown protocol", b"PROXY TCP5 192.0.2.30 203.0.113.1 40030 110\r\n"),
            ("v1 line without CRLF, 200 octets", b"PROXY TCP4 " + b"1" * 189),
            ("v2 version 1", v2(1, 0x11, a4, ver=1)),
            ("v2 version 3", v2(1, 0x11, a4, ver=3)),
            ("v2 command 2", v2(2, 0x11, a4)),
            ("v2 length over 1024 (header only)", v2(1, 0x11, b"", length=1024 - 16 + 1)),
            ("v2 length 65535 (header only)", v2(1, 0x11, b"", length=65535)),
            ("v2 INET with a short address block", v2(1, 0x11, a4[:8])),
            ("v2 TLV longer than the header", v2(1, 0x11, a4 + b"\x04\x00\x10abc")),
            ("v2 truncated TLV header", v2(1, 0x11, a4 + b"\x04\x00")),
            ("v2 bad signature", b"\r\n\r\n\x00\r\nQUIX\n" + v2(1, 0x11, a4)[12:]),
        ]
        for name, data in cases:
            with self.subTest(name):
                p = self.open()
                p.send(data)
                # Invalid as soon as it is seen: no waiting for the timeout.
                elapsed = self.expect_rejected(p, within=PROXY_TIMEOUT + 3)
                self.assertLess(elapsed, PROXY_TIMEOUT - 0.5,
                                "an invalid header was only dropped by the timeout")
                p.close()
        self.assertNotIn("ip=192.0.2.30", self.new_log())

    def test_v1_without_crlf_in_107_octets_is_invalid(self):
        # "If the CRLF sequence is not found in the first 107 characters, the
        # receiver should declare the line invalid": 107 octets and no CRLF is
        # enough to know, no need to wait for an 108th.
        p = self.open()
        data = b"PROXY UNKNOWN " + b"f" * (107 - 14)
        self.assertEqual(len(data), 107)
        p.send(data)
        elapsed = self.expect_rejected(p)
        self.assertLess(elapsed, PROXY_TIMEOUT - 0.5, "107 octets without CRLF waited for "
                        "the timeout instead of being invalid at once")

    def test_v1_line_of_108_octets_is_invalid(self):
        # The CRLF ends at octet 108: not within the first 107.
        header = b"PROXY UNKNOWN " + b"f" * (108 - 16) + b"\r\n"
        self.assertEqual(len(header), 108)
        p = self.open()
        p.send(header)
        self.expect_rejected(p, within=PROXY_TIMEOUT + 1,
                             msg="a 108-octet v1 line was taken as a header")

    def test_close_before_a_complete_header(self):
        p = self.open()
        real_port = p.real_port
        p.send(b"PROXY TCP4 192.0.2.")
        p.sock.shutdown(socket.SHUT_WR)
        data, closed = drain(p.sock, 5)
        self.assertEqual(data, b"")
        self.assertTrue(closed)
        self.wait_new_log("ip=127.0.0.1 port=%d reason=" % real_port, timeout=5)

    # --- truncated and slow headers -----------------------------------------------
    def test_truncated_headers_time_out(self):
        a4 = addr4("192.0.2.40", "203.0.113.1", 40040, 110)
        for name, data in (("v1 half", b"PROXY TCP4 192.0.2.40 20"),
                           ("v2 16 of 28", v2(1, 0x11, a4)[:16]),
                           ("v2 20 of 28", v2(1, 0x11, a4)[:20]),
                           ("nothing at all", b"")):
            with self.subTest(name):
                p = self.open()
                t0 = time.monotonic()
                if data:
                    p.send(data)
                self.expect_rejected(p, reason="proxy-timeout", within=PROXY_TIMEOUT + 4)
                elapsed = time.monotonic() - t0
                self.assertGreater(elapsed, PROXY_TIMEOUT - 0.5)
                self.assertLess(elapsed, PROXY_TIMEOUT + 3)
                p.close()

    def test_header_trickling_past_the_timeout_is_cut(self):
        # One byte every 0.4 s: each byte is progress, but the whole header
        # must arrive within proxy_timeout (else anyone can hold a slot).
        header = v1("TCP4", "192.0.2.41", "203.0.113.1", 40041, 110)
        p = self.open(nodelay=True)
        real_port = p.real_port
        t0 = time.monotonic()
        closed_at = None
        for i in range(len(header)):
            if time.monotonic() - t0 > PROXY_TIMEOUT + 3:
                break
            try:
                p.sock.send(header[i:i + 1])
            except OSError:
                closed_at = time.monotonic()
                break
            time.sleep(0.4)
            if "port=%d reason=" % real_port in self.new_log():
                closed_at = time.monotonic()
                break
        self.assertIsNotNone(closed_at, "a trickled header kept the connection past "
                             "proxy_timeout")
        self.wait_new_log("ip=127.0.0.1 port=%d reason=proxy-timeout" % real_port)
        self.assertLess(closed_at - t0, PROXY_TIMEOUT + 1.5)

    def test_byte_at_a_time_headers(self):
        cases = [
            ("v1", v1("TCP4", "192.0.2.42", "203.0.113.1", 40042, 110), "192.0.2.42", 40042),
            ("v2", v2(1, 0x11, addr4("192.0.2.43", "203.0.113.1", 40043, 110) +
                      tlv(0x02, b"mail.example.org")), "192.0.2.43", 40043),
        ]
        for name, header, ip, port in cases:
            with self.subTest(name):
                p = self.open(nodelay=True)
                for i in range(len(header)):
                    p.sock.send(header[i:i + 1])
                    time.sleep(0.005 if name == "v2" else 0.01)
                self.session(p)
                self.expect_session_log(ip, port)

    # --- trust --------------------------------------------------------------------
    def test_untrusted_source_is_closed_without_greeting(self):
        p = self.open(source=("127.0.0.3", 0))
        p.send(v1("TCP4", "192.0.2.50", "203.0.113.1", 40050, 110))
        data, closed = drain(p.sock, 5)
        self.assertEqual(data, b"")
        self.assertTrue(closed)
        self.wait_new_log("ip=127.0.0.3 reason=proxy-untrusted", timeout=5)
        self.assertNotIn("ip=192.0.2.50", self.new_log())
        # The plain listener does not care about proxy_trusted.
        q = self.open(port=self.d.port, source=("127.0.0.3", 0))
        self.assertEqual(q.line(), "+OK fastpop ready.")
        self.assertTrue(q.cmd("QUIT").startswith("+OK"))
        q.close()  # else quit_linger holds the log line

    # --- limits use the header address ------------------------------------------------
    def test_per_ip_limit_counts_the_header_address(self):
        hdr = v1("TCP4", "198.51.100.20", "203.0.113.1", 41000, 110)
        held = []
        for _ in range(PER_IP):
            p = self.open()
            p.send(hdr)
            self.assertEqual(p.line(), "+OK fastpop ready.")
            held.append(p)
        third = self.open()
        third.send(hdr)
        self.assertEqual(third.line(), "-ERR [SYS/TEMP] Too many connections from your "
                                       "address, try again later")
        self.assertTrue(third.closed_by_server())
        self.wait_new_log("session user=- ip=198.51.100.20 reason=refused "
                          "limit=max_connections_per_ip max=%d" % PER_IP)
        # The proxy itself is not limited: other clients through it still get in.
        others = []
        for i in range(3):
            p = self.open()
            p.send(v1("TCP4", "198.51.100.%d" % (30 + i), "203.0.113.1", 41001 + i, 110))
            self.assertEqual(p.line(), "+OK fastpop ready.")
            others.append(p)
        # Freeing one place of 198.51.100.20 lets it in again (the refused one left no count).
        self.assertTrue(held[0].cmd("QUIT").startswith("+OK"))
        held[0].close()

        def admitted():
            p = Pop3(self.pport, timeout=10)
            try:
                p.send(hdr)
                return p.line().startswith("+OK fastpop")
            finally:
                p.close()
        wait_until(admitted, timeout=5, what="a freed per-IP place for 198.51.100.20")

    def test_three_sources_through_one_proxy_all_served(self):
        ps = []
        for i in range(3):
            p = self.open()
            p.send(v2(1, 0x11, addr4("198.51.100.%d" % (60 + i), "203.0.113.1", 42000 + i, 110)))
            ps.append(p)
        for i, p in enumerate(ps):
            self.assertEqual(p.line(), "+OK fastpop ready.")
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
        for i, p in enumerate(ps):
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            p.close()  # else quit_linger holds the log line
            self.wait_new_log("session user=alice ip=198.51.100.%d port=%d reason="
                              % (60 + i, 42000 + i))
        self.assertNotIn("reason=refused", self.new_log())

    # --- PROXY + implicit TLS ---------------------------------------------------------
    def test_proxy_header_and_client_hello_in_one_segment(self):
        cases = [("v1", v1("TCP4", "192.0.2.70", "203.0.113.1", 40070, 995), "192.0.2.70", 40070),
                 ("v2", v2(1, 0x11, addr4("192.0.2.71", "203.0.113.1", 40071, 995) +
                           tlv(0x01, b"pop3")), "192.0.2.71", 40071)]
        for name, header, ip, port in cases:
            with self.subTest(name):
                try:
                    t = TlsClient(self.tport, header, self.cert)
                except (ssl.SSLError, EOFError, OSError) as e:
                    self.fail("TLS handshake after the PROXY header failed: %r" % e)
                self.conns.append(t)
                self.assertEqual(t.line(), "+OK fastpop ready.")
                self.assertTrue(t.cmd("USER alice").startswith("+OK"))
                self.assertTrue(t.cmd("PASS alice-secret").startswith("+OK"))
                self.assertRegex(t.cmd("STAT"), r"^\+OK \d+ \d+$")
                self.assertTrue(t.cmd("QUIT").startswith("+OK"))
                t.close()  # else quit_linger holds the log line
                self.wait_new_log("session user=alice ip=%s port=%d reason=" % (ip, port))
                line = [l for l in self.new_log().splitlines()
                        if "session user=alice ip=%s port=%d " % (ip, port) in l][0]
                self.assertRegex(line, r" tls=TLSv1\.[23] ")

    def test_tls_listener_invalid_header_gets_no_tls(self):
        p = self.open(port=self.tport)
        p.send(b"\x16\x03\x01\x00\x05hello")   # a ClientHello without a header
        self.expect_rejected(p)


class ProxyConfig(unittest.TestCase):
    """A proxy_protocol listener without proxy_trusted would believe anyone."""

    def check(self, extra):
        d = Daemon(workers=1, extra_config=extra)
        try:
            r = subprocess.run([os.path.join(BIN, "fastpopd"), "-t", "-c", d.conf],
                               capture_output=True, text=True, timeout=20)
        finally:
            shutil.rmtree(d.dir, ignore_errors=True)
        return r.returncode, r.stdout + r.stderr

    def test_proxy_protocol_needs_proxy_trusted(self):
        port = free_port()
        rc, out = self.check("listen = 127.0.0.1:%d proxy_protocol\n" % port)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("proxy_trusted", out)
        rc, out = self.check("listen = 127.0.0.1:%d proxy_protocol\n"
                             "proxy_trusted = 127.0.0.1/32, 10.0.0.0/8\n" % port)
        self.assertEqual(rc, 0, out)
        rc, out = self.check("listen = 127.0.0.1:%d proxy_protocol\n"
                             "proxy_trusted = 127.0.0.1/33\n" % port)
        self.assertNotEqual(rc, 0, out)


class PenaltyUsesHeaderAddress(unittest.TestCase):
    """The brute-force penalty scores the address from the header, not the
    proxy's: the proxy's own network is trusted here, the client is not."""

    def test_failed_login_through_proxy_is_penalised_by_header_address(self):
        port = free_port()
        d = Daemon(workers=1, extra_config=(
            "listen = 127.0.0.1:%d proxy_protocol\n"
            "proxy_trusted = 127.0.0.1/32\n"
            "auth_penalty = yes\n"
            "auth_penalty_delay = 1s\n"
            "auth_penalty_max_delay = 1s\n"
            "auth_penalty_trusted = 127.0.0.0/8\n" % port))
        self.addCleanup(d.cleanup)
        d.write_config(d.config_text().replace("log_level = info", "log_level = debug"))
        d.start()
        p = Pop3(port, timeout=15)
        try:
            p.send(v1("TCP4", "203.0.113.50", "203.0.113.1", 43000, 110))
            self.assertEqual(p.line(), "+OK fastpop ready.")
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            t0 = time.monotonic()
            r = p.cmd("PASS wrong")
            took = time.monotonic() - t0
        finally:
            p.close()
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        d.wait_log("auth penalty ip=203.0.113.50 user=alice")
        log = d.log()
        self.assertRegex(log, r"auth penalty ip=203\.0\.113\.50 user=alice ip_score=\S+ "
                         r"delay=1(\.0+)?s")
        self.assertNotIn("auth penalty ip=127.0.0.1 ", log)
        self.assertIn("ip=203.0.113.50", [l for l in log.splitlines()
                                          if "login failed user=alice" in l][0])
        self.assertGreater(took, 0.8, "the header address was not delayed")


class HAProxyInFront(unittest.TestCase):
    """HAProxy (mode tcp, send-proxy-v2, health checks) -> fastpop."""

    def setUp(self):
        self.haproxy = shutil.which("haproxy") or (
            "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
        if self.haproxy is None:
            self.skipTest("haproxy is not installed (t/tools/setup-host.sh installs it)")
        self.fport = free_port()
        self.hport = free_port()
        self.d = Daemon(workers=2, extra_config=(
            "listen = 127.0.0.1:%d proxy_protocol\n"
            "proxy_trusted = 127.0.0.1/32\n" % self.fport))
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.d.deliver("alice", MESSAGE)
        self.cfg = os.path.join(self.d.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("global\n"
                    "    maxconn 100\n"
                    "defaults\n"
                    "    mode tcp\n"
                    "    timeout connect 2s\n"
                    "    timeout client 10s\n"
                    "    timeout server 10s\n"
                    "    timeout check 2s\n"
                    "frontend fe\n"
                    "    bind 127.0.0.1:%d\n"
                    "    default_backend be\n"
                    "backend be\n"
                    "    server s1 127.0.0.1:%d send-proxy-v2 check inter 300ms rise 1 fall 1\n"
                    % (self.hport, self.fport))
        self.hlog_path = os.path.join(self.d.dir, "haproxy.log")
        self.hlog = open(self.hlog_path, "wb")
        self.hproc = subprocess.Popen([self.haproxy, "-f", self.cfg, "-db"],
                                      stdin=subprocess.DEVNULL, stdout=self.hlog,
                                      stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_haproxy)

    def stop_haproxy(self):
        if self.hproc.poll() is None:
            os.kill(self.hproc.pid, signal.SIGTERM)
            try:
                self.hproc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.hproc.pid, signal.SIGKILL)
                self.hproc.wait(5)
        self.hlog.close()

    def haproxy_output(self):
        with open(self.hlog_path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_client_address_through_haproxy(self):
        def listening():
            if self.hproc.poll() is not None:
                raise AssertionError("haproxy exited %s:\n%s" % (self.hproc.returncode,
                                                                self.haproxy_output()))
            try:
                socket.create_connection(("127.0.0.1", self.hport), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, timeout=10, what="haproxy to listen")
        log_start = len(self.d.log())

        p = Pop3(self.hport, timeout=10, source=("127.0.0.9", 0))
        client_port = p.sock.getsockname()[1]
        try:
            self.assertEqual(p.line(), "+OK fastpop ready.")
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            self.assertTrue(p.cmd("PASS alice-secret").startswith("+OK"))
            self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % len(MESSAGE))
            self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
            self.assertEqual(p.multiline(), MESSAGE)
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            p.close()  # else quit_linger holds the log line
        finally:
            p.close()
        self.d.wait_log("session user=alice ip=127.0.0.9 port=%d reason=" % client_port)
        self.assertIn("login user=alice ip=127.0.0.9 ", self.d.log()[log_start:])

        # Health checks every 300 ms meanwhile: LOCAL headers, never an error.
        time.sleep(1.0)
        # haproxy 2.6 checks a send-proxy-v2 server with a v2 LOCAL header
        # (0x20 0x00, length 0), then resets the connection.
        log = self.d.log()
        self.assertRegex(log[log_start:], r"session user=- ip=127\.0\.0\.1 port=\d+ "
                         r"reason=disconnected", "no health check reached fastpop")
        self.assertNotIn("PROXY header", log, log[-3000:])
        self.assertNotIn("reason=proxy-", log, log[-3000:])
        out = self.haproxy_output()
        self.assertNotIn("is DOWN", out, out)
        self.assertIsNone(self.hproc.poll(), out)


if __name__ == "__main__":
    main()

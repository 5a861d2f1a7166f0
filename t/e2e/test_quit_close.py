"""After the QUIT reply the server closes the connection (RFC 1939 sections 5
and 6). A client that reads until the server closes must not be held: this
was a 2 s wait per session while quit_linger defaulted to 2s.

Each case sends QUIT, reads the reply, then only waits for EOF, in the
AUTHORIZATION and the TRANSACTION state, plain, STLS and implicit TLS. The
bound (1 s) is half of the old linger: the close itself takes milliseconds.
"""
import socket
import ssl
import time

from fastpop_harness import main, wait_until
from tls_fixture import TlsTest, client_context, starttls, tls_connect

USER = "alice"
PASSWORD = "alice-secret"
EOF_WITHIN = 1.0


def eof_after(p, seconds):
    """Seconds until EOF (no byte sent meanwhile), or None if it did not come."""
    start = time.monotonic()
    p.sock.settimeout(seconds)
    try:
        while True:
            chunk = p.sock.recv(4096)
            if not chunk:
                return time.monotonic() - start
            p.buf += chunk
    except (socket.timeout, TimeoutError):
        return None
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
        return time.monotonic() - start


class QuitClosesAtOnce(TlsTest):
    listeners = {"tls": "tls"}
    plaintext_auth = "yes"

    def open(self, how):
        if how == "plain":
            p = self.d.connect()
            self.assertTrue(p.line().startswith("+OK"))
        elif how == "stls":
            p = self.d.connect()
            self.assertTrue(p.line().startswith("+OK"))
            starttls(p, client_context(self.ca))
        else:
            p = tls_connect(self.port(), client_context(self.ca))
            self.assertTrue(p.line().startswith("+OK"))
        self.addCleanup(p.close)
        return p

    def quit_and_wait(self, p, logged_in):
        if logged_in:
            self.assertTrue(p.cmd("USER " + USER).startswith("+OK"))
            self.assertTrue(p.cmd("PASS " + PASSWORD).startswith("+OK"))
            self.assertTrue(p.cmd("STAT").startswith("+OK 0 0"))
        r = p.cmd("QUIT")
        self.assertTrue(r.startswith("+OK"), r)
        took = eof_after(p, 5.0)
        self.assertIsNotNone(took, "no EOF within 5 s of the QUIT reply")
        self.assertLess(took, EOF_WITHIN, "the server held the connection %.2f s after "
                        "QUIT's reply" % took)
        self.assertEqual(p.buf, b"", "bytes after QUIT's reply")

    def test_authorization_plain(self):
        self.quit_and_wait(self.open("plain"), False)

    def test_transaction_plain(self):
        self.quit_and_wait(self.open("plain"), True)

    def test_authorization_stls(self):
        self.quit_and_wait(self.open("stls"), False)

    def test_transaction_stls(self):
        self.quit_and_wait(self.open("stls"), True)

    def test_authorization_implicit_tls(self):
        self.quit_and_wait(self.open("tls"), False)

    def test_transaction_implicit_tls(self):
        self.quit_and_wait(self.open("tls"), True)

    def test_session_line_says_quit(self):
        p = self.open("plain")
        client_port = p.sock.getsockname()[1]
        self.quit_and_wait(p, True)
        self.assertIn("reason=quit", self.session_line(client_port))

    def test_bytes_after_quit_do_not_cost_the_reply(self):
        """Data the client sent after QUIT is read and dropped before the
        close, so the kernel sends FIN, not a reset that could discard the
        reply still in flight."""
        p = self.open("plain")
        self.assertTrue(p.cmd("USER " + USER).startswith("+OK"))
        self.assertTrue(p.cmd("PASS " + PASSWORD).startswith("+OK"))
        p.send("QUIT\r\nNOOP\r\nNOOP\r\n")
        self.assertTrue(p.line().startswith("+OK"))
        took = eof_after(p, 5.0)
        self.assertIsNotNone(took)
        self.assertEqual(p.buf, b"", "a command after QUIT was answered")


class QuitLingerOptIn(TlsTest):
    """quit_linger > 0 keeps the old wait for a client that closes first, and
    still closes within the linger for one that does not."""
    listeners = {"tls": "tls"}
    plaintext_auth = "yes"
    tls_extra = "quit_linger = 3s\n"

    def test_waits_for_the_client_up_to_the_linger(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        took = eof_after(p, 10.0)
        self.assertIsNotNone(took)
        self.assertGreater(took, 2.0, "quit_linger = 3s was not honoured")

    def test_client_close_ends_it_early(self):
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        client_port = p.sock.getsockname()[1]
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        wait_until(lambda: "port=%d reason=quit" % client_port in self.d.log(), 2.5,
                   what="session line after the client's close")


if __name__ == "__main__":
    main()

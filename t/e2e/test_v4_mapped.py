"""IPv4-mapped IPv6 addresses (issue 12 item 7). A dual-stack proxy names an
IPv4 client `::ffff:a.b.c.d` in its PROXY header; fastpop must treat it as the
IPv4 address it is everywhere: the session log, IPv4 networks in
plaintext_trusted, the per-address connection cap (IPv4 /32, not the IPv6
/64 that all mapped addresses share) and the auth helper's brute-force
penalty (else 2 failures from one IPv4 client block every IPv4 client behind
that proxy)."""
import socket
import struct
import time
import unittest

from fastpop_harness import Daemon, Pop3, free_port, main, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PER_IP = 2


def v1_tcp6(src, sport):
    return ("PROXY TCP6 %s ::ffff:203.0.113.1 %d 110\r\n" % (src, sport)).encode()


def v2_tcp6(src, sport):
    body = (socket.inet_pton(socket.AF_INET6, src) +
            socket.inet_pton(socket.AF_INET6, "::ffff:203.0.113.1") + struct.pack("!HH", sport, 110))
    return V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


def v1_tcp4(src, sport):
    return ("PROXY TCP4 %s 203.0.113.1 %d 110\r\n" % (src, sport)).encode()


class V4Mapped(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pport = free_port()
        extra = ("listen = 127.0.0.1:%d proxy_protocol\n"
                 "proxy_trusted = 127.0.0.1/32\n"
                 "plaintext_trusted = 192.0.2.0/24\n"
                 "max_connections_per_ip = %d\n"
                 "auth_penalty = yes\n"
                 "auth_penalty_delay = 0s\n"
                 "auth_penalty_max_delay = 0s\n"
                 "auth_penalty_block_after = 2\n"
                 "auth_penalty_block_time = 10m\n" % (cls.pport, PER_IP))
        cls.d = Daemon(workers=2, extra_config=extra,
                       users={"alice": "alice-secret", "bob": "bob-secret"})
        # Passwords in the clear only from 192.0.2.0/24: proves IPv4 networks match.
        cls.d.write_config(cls.d.config_text().replace("plaintext_auth = yes",
                                                       "plaintext_auth = no"))
        try:
            cls.d.start()
        except Exception:
            print(cls.d.log()[-4000:])
            cls.d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def setUp(self):
        self.log_start = len(self.d.log())
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()

    def new_log(self):
        return self.d.log()[self.log_start:]

    def wait_new_log(self, text, timeout=10.0):
        return wait_until(lambda: text in self.new_log(), timeout,
                          what="log line %r:\n%s" % (text, self.new_log()[-3000:]))

    def open(self, header):
        p = Pop3(self.pport, timeout=10)
        self.conns.append(p)
        p.send(header)
        return p

    def login(self, p, password="alice-secret", user="alice"):
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertTrue(p.cmd("USER " + user).startswith("+OK"))
        return p.cmd("PASS " + password)

    def test_session_log_names_the_ipv4_address(self):
        for name, header, ip, port in (("v1", v1_tcp6("::ffff:192.0.2.1", 40101), "192.0.2.1", 40101),
                                       ("v2", v2_tcp6("::ffff:192.0.2.2", 40102), "192.0.2.2", 40102)):
            with self.subTest(name):
                p = self.open(header)
                # plaintext_trusted = 192.0.2.0/24 lets the password in.
                self.assertTrue(self.login(p).startswith("+OK"))
                self.assertTrue(p.cmd("QUIT").startswith("+OK"))
                p.close()
                self.wait_new_log("session user=alice ip=%s port=%d reason=quit" % (ip, port))
        self.assertIn("login user=alice ip=192.0.2.1 ", self.new_log())
        self.assertNotIn("::ffff:", self.new_log())

    def test_ipv4_networks_match_mapped_clients(self):
        p = self.open(v1_tcp6("::ffff:198.51.100.1", 40103))   # outside 192.0.2.0/24
        self.assertEqual(p.line(), "+OK fastpop ready.")
        r = p.cmd("USER alice")
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        p = self.open(v1_tcp6("::ffff:192.0.2.3", 40104))
        self.assertTrue(self.login(p).startswith("+OK"))

    def test_per_ip_cap_counts_ipv4_not_a_shared_64(self):
        held = [self.open(v1_tcp4("192.0.2.50", 40110)),
                self.open(v1_tcp6("::ffff:192.0.2.50", 40111))]
        for p in held:
            self.assertEqual(p.line(), "+OK fastpop ready.")
        # The same IPv4 client a third time, in v2 this time: over the cap.
        p = self.open(v2_tcp6("::ffff:192.0.2.50", 40112))
        self.assertEqual(p.line(), "-ERR [SYS/TEMP] Too many connections from your address, "
                                   "try again later")
        self.wait_new_log("session user=- ip=192.0.2.50 reason=refused "
                          "limit=max_connections_per_ip max=%d" % PER_IP)
        # Its neighbour is another client, not part of one ::/64 of all mapped addresses.
        for port in (40113, 40114):
            q = self.open(v1_tcp6("::ffff:192.0.2.51", port))
            self.assertEqual(q.line(), "+OK fastpop ready.")

    def test_penalty_blocks_one_ipv4_client_not_all(self):
        # bob never logs in elsewhere: no credential cache entry answers for the helper.
        for port in (40120, 40121):
            p = self.open(v1_tcp6("::ffff:192.0.2.60", port))
            self.assertTrue(self.login(p, "wrong", "bob").startswith("-ERR"))
            p.close()
        # Blocked now, under either spelling, even with the right password...
        for header in (v1_tcp6("::ffff:192.0.2.60", 40122), v1_tcp4("192.0.2.60", 40123)):
            p = self.open(header)
            r = self.login(p, "bob-secret", "bob")
            self.assertTrue(r.startswith("-ERR"), r)
            p.close()
        self.assertIn("ip=192.0.2.60", self.new_log())
        # ...while another IPv4 client behind the same proxy logs in.
        p = self.open(v2_tcp6("::ffff:192.0.2.61", 40124))
        r = self.login(p, "bob-secret", "bob")
        self.assertTrue(r.startswith("+OK"), r)


if __name__ == "__main__":
    main()

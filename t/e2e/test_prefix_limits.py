"""Connection caps per address block (issue 12 item 8): max_connections_per_ip
counts an IPv4 address or a whole IPv6 /64, max_connections_per_ipv6_48 the
/48 around it. Loopback has one IPv6 address, so the clients come through a
PROXY protocol listener (proxy_trusted = 127.0.0.1) whose headers name
different IPv6 addresses."""
import socket
import struct
import unittest

from fastpop_harness import Daemon, Pop3, free_port, main, wait_until

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PER_IP = 2
PER_48 = 3
BUSY_ADDRESS = "-ERR [SYS/TEMP] Too many connections from your address, try again later"
BUSY_NETWORK = "-ERR [SYS/TEMP] Too many connections from your network, try again later"


def v1(src, sport):
    return ("PROXY TCP6 %s 2001:db8:ffff::1 %d 110\r\n" % (src, sport)).encode()


def v2(src, sport):
    body = (socket.inet_pton(socket.AF_INET6, src) +
            socket.inet_pton(socket.AF_INET6, "2001:db8:ffff::1") + struct.pack("!HH", sport, 110))
    return V2_SIG + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


class PrefixLimits(unittest.TestCase):

    def setUp(self):
        self.pport = free_port()
        self.d = Daemon(workers=2, extra_config=(
            "listen = 127.0.0.1:%d proxy_protocol\n"
            "proxy_trusted = 127.0.0.1/32\n"
            "max_connections_per_ip = %d\n"
            "max_connections_per_ipv6_48 = %d\n" % (self.pport, PER_IP, PER_48)))
        self.addCleanup(self.d.cleanup)
        self.d.start()
        self.conns = []
        self.addCleanup(lambda: [c.close() for c in self.conns])

    def held(self, header):
        """A connection that got its greeting (and stays open)."""
        p = Pop3(self.pport, timeout=10)
        self.conns.append(p)
        p.send(header)
        self.assertEqual(p.line(), "+OK fastpop ready.", header)
        return p

    def refused(self, header, text):
        p = Pop3(self.pport, timeout=10)
        self.conns.append(p)
        p.send(header)
        self.assertEqual(p.line(), text, header)
        self.assertTrue(p.closed_by_server())

    def test_one_64_is_one_client(self):
        self.held(v1("2001:db8:1:1::1", 40001))
        self.held(v2("2001:db8:1:1:ffff::2", 40002))
        # A third address of the same /64 is the same client a third time.
        self.refused(v1("2001:db8:1:1:abcd:ef01:2345:6789", 40003), BUSY_ADDRESS)
        self.d.wait_log("session user=- ip=2001:db8:1:1:abcd:ef01:2345:6789 reason=refused "
                        "limit=max_connections_per_ip max=%d" % PER_IP)
        # The neighbouring /64 is another client.
        self.held(v1("2001:db8:1:2::1", 40004))

    def test_48_aggregate(self):
        self.held(v1("2001:db8:5:1::1", 40011))
        self.held(v1("2001:db8:5:2::1", 40012))
        last = self.held(v2("2001:db8:5:3::1", 40013))
        # A fourth /64 of the same /48: the site is full.
        self.refused(v1("2001:db8:5:4::1", 40014), BUSY_NETWORK)
        self.d.wait_log("session user=- ip=2001:db8:5:4::1 reason=refused "
                        "limit=max_connections_per_ipv6_48 max=%d" % PER_48)
        # Another /48 is not affected.
        self.held(v1("2001:db8:6::1", 40015))
        # One leaves: the site has room again.
        self.assertTrue(last.cmd("QUIT").startswith("+OK"))
        last.close()
        self.d.wait_log("ip=2001:db8:5:3::1 port=40013 reason=quit")
        wait_until(lambda: self._try(v1("2001:db8:5:4::1", 40016)), 10,
                   what="room in the /48 after a session ended")

    def _try(self, header):
        p = Pop3(self.pport, timeout=10)
        self.conns.append(p)
        p.send(header)
        return p.line() == "+OK fastpop ready."


if __name__ == "__main__":
    main()

"""TLS cost per session: the suite a TLS 1.3 client gets by default, how many
session tickets a handshake issues, that a client which uses each ticket once
(RFC 8446 C.4) resumes every time. What an idle TLS connection costs in memory
is measured by the benchmark (t/bench/compare.sh, idle TLS), not here: a
per-connection PSS threshold close to the measured value failed on a loaded
machine (22.8 KB against 20), and memory targets belong to the benchmark.

Only counts are asserted, never time or memory.
"""
import os
import re
import subprocess

from fastpop_harness import main
from tls_fixture import OPENSSL, V13, TlsTest, client_context, tls_connect


def s_client(port, sess_out, sess_in=None):
    """openssl s_client over TLS 1.3: QUIT after the greeting. Returns (tickets, reused)."""
    args = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3", "-ign_eof",
            "-sess_out", sess_out]
    if sess_in:
        args += ["-sess_in", sess_in]
    # The greeting is read before QUIT goes out, and QUIT's reply before EOF, so every
    # ticket (sent before the greeting) is in the output.
    r = subprocess.run(args, input=b"QUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    out = r.stdout.decode(errors="replace")
    assert "+OK" in out, out
    tickets = len(re.findall(r"Post-Handshake New Session Ticket arrived", out))
    reused = bool(re.search(r"^Reused, TLSv1\.3", out, re.M))
    return tickets, reused


def tree_pss_kib(root):
    """PSS of root and its descendants (the workers), from smaps_rollup."""
    parent = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids, i = [root], 0
    while i < len(pids):
        pids += [p for p, pp in parent.items() if pp == pids[i]]
        i += 1
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                total += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except OSError:
            pass
    return total


class Tickets(TlsTest):

    workers = 1

    def test_default_suite_is_aes128_gcm(self):
        # A client offering every suite (OpenSSL's own order puts AES-256 first).
        p = tls_connect(self.port(), client_context(self.ca, min_version=V13))
        self.addCleanup(p.close)
        self.assertEqual(p.line(), "+OK fastpop ready.")
        self.assertEqual(p.sock.cipher()[0], "TLS_AES_128_GCM_SHA256")
        p.cmd("QUIT")

    def test_one_ticket_per_full_handshake(self):
        sess = os.path.join(self.factory.dir, "tickets-full.sess")
        tickets, reused = s_client(self.port(), sess)
        self.assertFalse(reused)
        self.assertEqual(tickets, 1, "a full handshake should issue exactly one ticket")

    def test_resumed_handshake_issues_a_fresh_ticket(self):
        first = os.path.join(self.factory.dir, "tickets-a.sess")
        second = os.path.join(self.factory.dir, "tickets-b.sess")
        s_client(self.port(), first)
        tickets, reused = s_client(self.port(), second, sess_in=first)
        self.assertTrue(reused, "the ticket of the first connection did not resume")
        self.assertEqual(tickets, 1, "a resumed TLS 1.3 session must leave the client a new "
                                     "ticket (clients use each one once)")

    def test_single_use_client_resumes_every_time(self):
        # Each connection offers the newest session the previous one received.
        ctx = client_context(self.ca, min_version=V13, max_version=V13)
        session, used = None, []
        for i in range(4):
            p = tls_connect(self.port(), ctx, session=session)
            self.addCleanup(p.close)
            self.assertEqual(p.line(), "+OK fastpop ready.")   # the ticket came before it
            if i > 0:
                self.assertTrue(p.sock.session_reused, "connection %d not resumed" % i)
            new = p.sock.session
            self.assertIsNotNone(new)
            # A TLS 1.3 client session's id is the hash of its ticket: a new ticket, a new id.
            self.assertNotIn(new.id, used, "connection %d left the client no new ticket" % i)
            used.append(new.id)
            session = new
            p.cmd("QUIT")
            p.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""UIDL formats of other servers: dovecot_uidl_format against the real
Dovecot 2.3 with the same pop3_uidl_format, and X-UIDL headers (qpopper)."""

import os
import time
import unittest

from fastpop_harness import IS_ROOT, DaemonTest, main
from test_index import DOVECOT, Dovecot, session_lists


def fill_for_dovecot(d, user):
    """Old mail in cur/ (with flags) and new/, as a Dovecot site has it."""
    now = int(time.time()) - 100
    for i in range(3):
        d.deliver(user, "Subject: %d\n\nbody %d\n" % (i, i),
                  name="%d.M%dP1.old,S=%d:2,S" % (now + i, i, 19), subdir="cur")
    d.deliver(user, "Subject: new\n\nbody\n", name="%d.M9P1.old" % (now + 5))


class FormatMatchesDovecot:
    """fastpop, given the site's pop3_uidl_format, serves Dovecot's UIDLs."""
    workers = 1
    users = {"alice": "alice-secret"}
    uidl_format = None

    def test_same_uidls_as_dovecot(self):
        d = self.d
        fill_for_dovecot(d, "alice")
        dc = Dovecot(d.maildir("alice"), "alice", d.users["alice"], self.uidl_format)
        try:
            served = dc.uidl("alice", d.users["alice"])
        finally:
            dc.stop()
        self.assertEqual(len(served), 4)
        d._own(d.maildir("alice"))
        d.start()
        self.assertEqual(session_lists(d, "alice")[0], served)
        # Mail after the switch gets fastpop's own UIDL, after the old ones.
        d.deliver("alice", "Subject: later\n\nbody\n", name="%d.M1P1.later" % int(time.time()))
        uidls = session_lists(d, "alice")[0]
        self.assertEqual(uidls[:4], served)
        self.assertEqual(uidls[4], "5 %d.M1P1.later" % int(uidls[4].split(" ")[1].split(".")[0]))


@unittest.skipUnless(IS_ROOT and os.path.exists(DOVECOT), "needs root and dovecot-pop3d")
class UidValidityFormat(FormatMatchesDovecot, DaemonTest):
    uidl_format = "%u-%v"
    extra_config = "dovecot_uidl_format = %u-%v\n"


@unittest.skipUnless(IS_ROOT and os.path.exists(DOVECOT), "needs root and dovecot-pop3d")
class GuidFormat(FormatMatchesDovecot, DaemonTest):
    uidl_format = "%g"
    extra_config = "dovecot_uidl_format = %g\n"


@unittest.skipUnless(IS_ROOT and os.path.exists(DOVECOT), "needs root and dovecot-pop3d")
class HexFormat(FormatMatchesDovecot, DaemonTest):
    uidl_format = "%08Xv.%04Xu"
    extra_config = "dovecot_uidl_format = %08Xv.%04Xu\n"


QPOPPER_MAIL = [
    ("Received: by mbox\nX-UIDL: 5a1b2c3d4e5f60718293a4b5c6d7e8f9\nSubject: 1\n\nbody\n", "1.q1"),
    ("X-UIDL: ^JN!!Wf0\"!X)Z!!E6d!!\nSubject: 2\n\nbody\n", "2.q2"),
    ("Subject: 3 has none\n\nX-UIDL: in-the-body\n", "3.q3"),
]


class XUidlHeaders(DaemonTest):
    """A converted qpopper mbox: each message carries its UIDL in X-UIDL."""
    workers = 1
    users = {"alice": "alice-secret"}
    extra_config = "x_uidl_header = yes\n"

    def test_headers_are_the_uidls(self):
        d = self.d
        for text, name in QPOPPER_MAIL:
            d.deliver("alice", text, name="16000000%s:2,S" % name, subdir="cur")
        d.start()
        want = ["1 5a1b2c3d4e5f60718293a4b5c6d7e8f9", '2 ^JN!!Wf0"!X)Z!!E6d!!',
                "3 16000000" + "3.q3"]
        self.assertEqual(session_lists(d, "alice")[0], want)
        # Warm (the index) and after new mail (cur/ read again): the same.
        self.assertEqual(session_lists(d, "alice")[0], want)
        d.deliver("alice", "X-UIDL: later\n\nbody\n", name="1700000000.new")
        self.assertEqual(session_lists(d, "alice")[0], want + ["4 later"])
        # A header another message's UIDL already has is not taken.
        d.deliver("alice", "X-UIDL: later\n\nbody\n", name="1700000001.dup")
        self.assertEqual(session_lists(d, "alice")[0][4], "5 1700000001.dup")


class XUidlHeadersOff(DaemonTest):
    """The default: a header is what a sender wrote, never a UIDL."""
    workers = 1
    users = {"alice": "alice-secret"}

    def test_headers_ignored(self):
        d = self.d
        for text, name in QPOPPER_MAIL:
            d.deliver("alice", text, name="16000000%s:2,S" % name, subdir="cur")
        d.start()
        self.assertEqual(session_lists(d, "alice")[0],
                         ["1 160000001.q1", "2 160000002.q2", "3 160000003.q3"])


if __name__ == "__main__":
    main()

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


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Hashed maildir trees of Dovecot and Courier sites, used as they are: the
template's substring and hash modifiers, end to end (login, LIST, RETR)."""

import os
import unittest

from fastpop_harness import DaemonTest, main


class HashedLayouts(DaemonTest):
    workers = 1
    users = {"alice@example.org": "a-secret", "jo@d": "j-secret"}

    def use_template(self, template):
        d = self.d
        text = "\n".join(line for line in d.config_text().splitlines()
                         if not line.startswith("maildir ="))
        d.write_config(text + "\nmaildir = %s/%s\n" % (d.mail, template))

    def deliver_at(self, path, text):
        d = self.d
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        with open(os.path.join(path, "new", "1700000000.M1P1.layout"), "w") as f:
            f.write(text)
        d._own(d.mail)

    def messages(self, user):
        p = self.d.connect()
        try:
            r = p.login(user, self.d.users[user])
            self.assertTrue(r.startswith("+OK"), r)
            self.assertTrue(p.cmd("LIST").startswith("+OK"))
            listing = p.multiline().decode().splitlines()
            body = b""
            if listing:
                self.assertTrue(p.cmd("RETR 1").startswith("+OK"))
                body = p.multiline()
            p.cmd("QUIT")
            return listing, body
        finally:
            p.close()

    def test_substring_tree(self):
        # /var/vmail/%d/%1n/%2.1n/%n: alice -> a/i/alice; jo -> j//jo, as in Dovecot.
        self.use_template("%d/%1n/%2.1n/%n")
        self.deliver_at(os.path.join(self.d.mail, "example.org", "a", "i", "alice"),
                        "Subject: hashed\n\nfound\n")
        self.deliver_at(os.path.join(self.d.mail, "d", "j", "jo"), "Subject: short\n\nshort\n")
        self.d.start()
        listing, body = self.messages("alice@example.org")
        self.assertEqual(len(listing), 1)
        self.assertIn(b"found", body)
        listing, body = self.messages("jo@d")
        self.assertIn(b"short", body)

    def test_md5_tree(self):
        # md5("alice") = 6384e2b2...: /63/84/alice; %4.256Nu of the whole name is 000b
        # (both from Dovecot 2.3's doveadm, t/unit/test_template_escape.c).
        self.use_template("%2Mn/%2.2Mn/%4.256Nu/%n")
        self.deliver_at(os.path.join(self.d.mail, "63", "84", "000b", "alice"),
                        "Subject: md5\n\nmd5 tree\n")
        self.d.start()
        listing, body = self.messages("alice@example.org")
        self.assertEqual(len(listing), 1)
        self.assertIn(b"md5 tree", body)


if __name__ == "__main__":
    main()

"""Mailboxes big enough to hurt (issue 13, part 3): a login that must list
and size hundreds of thousands of files runs on the worker's loader thread
while the worker serves its other sessions; a client that goes away during
that load leaves nothing behind; a mailbox over max_messages is refused with
[SYS/PERM]; a 10 GB message is listed, its headers shown and its body
streamed without being held in memory.

The big maildirs are hard links to one file on a tmpfs mounted by the test
(root only), so 500,000 messages are made in seconds and vanish at the
unmount. FASTPOP_BIG_MESSAGES scales the 500,000 down for a slow (sanitizer)
build; the property checked is the same at any size that takes the worker
longer to read than a NOOP takes to answer."""
import os
import select
import socket
import time
import unittest

from fastpop_harness import IS_ROOT, DaemonTest, main, pop3_size, wait_until
from test_resources import crashes, mount, session, stats

BIG = int(os.environ.get("FASTPOP_BIG_MESSAGES", "500000"))
BODY = b"Subject: big\n\nline\n"


def linked_maildir(test, d, user, count, in_new=0):
    """user's maildir on a fresh tmpfs: count links to one message in cur/, in_new in new/.
    No size in the names: a cold login opens and reads every file."""
    root = d.maildir(user)
    mount(test, root, "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs")
    d.maildir(user)
    src = os.path.join(root, "message")
    with open(src, "wb") as f:
        f.write(BODY)
    st = os.stat(os.path.join(root, "cur"))
    os.chown(src, st.st_uid, st.st_gid)
    os.chown(root, st.st_uid, st.st_gid)
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for sub, n, first in (("cur", count, 0), ("new", in_new, count)):
            dirfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=rootfd)
            try:
                for i in range(first, first + n):
                    os.link("message", "1600000000.M%dP1.big%s" % (i, ":2,S" if sub == "cur"
                                                                   else ""),
                            src_dir_fd=rootfd, dst_dir_fd=dirfd)
            finally:
                os.close(dirfd)
    finally:
        os.close(rootfd)
    return root


def readable(p):
    """Whether the server has sent p anything not read yet (no waiting)."""
    return bool(p.buf) or bool(select.select([p.sock], [], [], 0)[0])


def send_login(p, user, password):
    """USER and PASS, without waiting for PASS's answer."""
    assert p.line().startswith("+OK")
    assert p.cmd("USER " + user).startswith("+OK")
    p.send("PASS %s\r\n" % password)


@unittest.skipUnless(IS_ROOT, "mounts a tmpfs")
class BigLoginYields(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "big": "big-secret"}
    # The load may outlast the default 60 s under a sanitizer; the client must not be cut.
    extra_config = "login_timeout = 10m\n"

    def test_noop_answered_while_a_500000_message_login_reads_its_maildir(self):
        d = self.d
        d.deliver("alice", "Subject: a\n\nsmall\n", subdir="cur")
        root = linked_maildir(self, d, "big", BIG, in_new=5)
        d.start()
        b = d.connect(timeout=60)
        self.assertTrue(b.login("alice", "alice-secret").startswith("+OK"))
        a = d.connect(timeout=600)
        send_login(a, "big", "big-secret")
        # new/ is emptied first: from then on the worker lists and sizes cur/.
        wait_until(lambda: not os.listdir(os.path.join(root, "new")), 60, interval=0.01,
                   what="the big login to start reading its maildir")
        self.assertEqual(b.cmd("NOOP"), "+OK")
        # Answered while the big login was still being read: it has no answer yet.
        self.assertFalse(readable(a), "the NOOP waited for the big login")
        r = a.line()
        self.assertEqual(r, "+OK Logged in, %d messages" % (BIG + 5))
        size = len(pop3_size(BODY))
        self.assertEqual(a.cmd("STAT"), "+OK %d %d" % (BIG + 5, (BIG + 5) * size))
        self.assertEqual(a.cmd("LIST %d" % (BIG + 5)), "+OK %d %d" % (BIG + 5, size))
        self.assertTrue(a.cmd("QUIT").startswith("+OK"))
        self.assertTrue(b.cmd("QUIT").startswith("+OK"))
        a.close()
        b.close()
        self.assertEqual(crashes(d), 0)


@unittest.skipUnless(IS_ROOT, "mounts a tmpfs")
class LoadAbandoned(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "big": "big-secret"}
    extra_config = "login_timeout = 10m\n"

    def test_client_gone_during_its_load_leaves_no_lock_and_no_leak(self):
        d = self.d
        count = min(BIG, 100000)
        root = linked_maildir(self, d, "big", count, in_new=5)
        d.start()
        a = d.connect(timeout=60)
        send_login(a, "big", "big-secret")
        wait_until(lambda: not os.listdir(os.path.join(root, "new")), 60, interval=0.01,
                   what="the big login to start reading its maildir")
        # A reset, seen at once (a FIN would only be seen at the answer).
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        a.close()
        d.wait_log("session user=big", timeout=60)
        # The worker goes on; the mailbox is locked until the abandoned load ends, then free.
        self.assertTrue(session(d)[0].startswith("+OK 0 "))

        def login_big():
            p = d.connect(timeout=600)
            try:
                r = p.login("big", "big-secret")
                if r.startswith("-ERR [IN-USE]"):
                    return None
                self.assertEqual(r, "+OK Logged in, %d messages" % (count + 5))
                self.assertTrue(p.cmd("QUIT").startswith("+OK"))
                return r
            finally:
                p.close()
        wait_until(login_big, 300, interval=0.2, what="the big mailbox to be free again")
        log = d.log()
        # The session ended first, during its load; the lock went when the load ended.
        gone = log.index("session user=big")
        self.assertIn("reason=disconnected", log[gone:gone + 200])
        self.assertLess(gone, log.index("user=big: the mailbox read for a session that closed "
                                        "meanwhile is done"))
        self.assertNotIn("cannot read maildir", log)
        self.assertEqual(crashes(d), 0)
        # No scoreboard slot left behind (the abandoned load kept one until it ended).
        wait_until(lambda: stats(d)["connections"] == 0, 10, what="no connection counted")


@unittest.skipUnless(IS_ROOT, "mounts a tmpfs")
class MaxMessages(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "five": "five-secret", "six": "six-secret"}
    extra_config = "max_messages = 5\n"

    def fill(self, user, n):
        for i in range(n):
            self.d.deliver(user, "Subject: %d\n\nbody\n" % i, subdir="cur",
                           name="17000%05d.M%dP1.max:2,S" % (i, i))

    def test_a_mailbox_over_the_limit_gets_sys_perm_and_others_are_served(self):
        d = self.d
        self.fill("five", 5)
        self.fill("six", 6)
        # Old enough for the index to trust: a later login is answered from the record.
        past = time.time() - 60
        for sub in ("cur", "new"):
            os.utime(os.path.join(d.maildir("five"), sub), (past, past))
        d.start()
        self.assertTrue(session(d, "five")[0].startswith("+OK 5 "))
        for _ in range(2):
            p = d.connect()
            r = p.login("six", "six-secret")
            p.close()
            self.assertTrue(r.startswith("-ERR [SYS/PERM] "), r)
        log = d.log()
        self.assertEqual(log.count("more than max_messages (5)"), 2, log[-3000:])
        # The listing stopped at the limit: nothing of it was stored, nothing else failed.
        self.assertNotIn("cannot read maildir", log)
        self.assertTrue(session(d, "alice")[0].startswith("+OK 0 "))
        # A mailbox the index knows, over a limit lowered since: refused from the record.
        d.stop()
        d.log_file.close()
        d.write_config(d.config_text("max_messages = 4\n"))
        d.start()
        p = d.connect()
        r = p.login("five", "five-secret")
        p.close()
        self.assertTrue(r.startswith("-ERR [SYS/PERM] "), r)
        self.assertIn("holds 5 messages, more than max_messages (4)", d.log())
        self.assertEqual(crashes(d), 0)


class TenGigabyteMessage(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    extra_config = "login_timeout = 10m\n"
    SIZE = 10 << 30
    HEAD = b"Subject: huge\nFrom: a@example.org\n\n"

    def test_list_top_and_a_cut_retr_of_a_sparse_10_gb_message(self):
        d = self.d
        # Sparse: zeros after the headers, no disk used (no LF: the POP3 size is the file's
        # plus one CR per header line and a CRLF at the end). The name carries both sizes, as
        # Dovecot writes them: without, the first login reads all 10 GB once to count the
        # LFs (46 s here), on the loader thread while the worker serves the others.
        size = self.SIZE + self.HEAD.count(b"\n") + 2
        path = d.deliver("alice", self.HEAD, subdir="cur",
                         name="1700000000.M1P1.huge,S=%d,W=%d:2,S" % (self.SIZE, size))
        os.truncate(path, self.SIZE)
        d.deliver("bob", "Subject: b\n\nbob\n", subdir="cur")
        d.start()
        a = d.connect(timeout=600)
        self.assertEqual(a.login("alice", "alice-secret"), "+OK Logged in, 1 messages")
        self.assertEqual(a.cmd("LIST 1"), "+OK 1 %d" % size)
        self.assertTrue(a.cmd("TOP 1 0").startswith("+OK"))
        self.assertEqual(a.multiline(), self.HEAD.replace(b"\n", b"\r\n"))
        self.assertEqual(a.cmd("RETR 1"), "+OK %d octets" % size)
        got = len(a.buf)
        while got < 4 << 20:
            chunk = a.sock.recv(1 << 20)
            self.assertTrue(chunk)
            got += len(chunk)
        worker = d.workers_pids()[0]
        with open("/proc/%d/status" % worker) as f:
            rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
        # Streamed in pieces: nowhere near the message in memory (a sanitizer build's own
        # shadow memory included).
        self.assertLess(rss, 1 << 20, "worker RSS %d KiB while streaming" % rss)
        a.close()
        b = d.connect()
        self.assertTrue(b.login("bob", "bob-secret").startswith("+OK"))
        self.assertEqual(b.cmd("NOOP"), "+OK")
        self.assertTrue(b.cmd("QUIT").startswith("+OK"))
        b.close()
        d.wait_log("session user=alice", timeout=60)
        self.assertEqual(d.workers_pids(), [worker])
        self.assertEqual(crashes(d), 0)


if __name__ == "__main__":
    main()

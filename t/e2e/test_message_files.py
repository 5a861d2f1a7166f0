"""A message file that is not a regular file (issue 12 item 10): a FIFO
renamed over a message in cur/ must not block the worker in open(2). RETR
and TOP of it get a clear -ERR, the session and the worker's other sessions
go on, and the daemon stops normally."""
import os
import pwd
import grp

from fastpop_harness import DaemonTest, IS_ROOT, MAIL_GROUP, MAIL_USER, main, retr_wire

MESSAGE = b"Subject: one\n\nbody of one\n"
OTHER = b"Subject: two\n\nbody of two\n"


class FifoOverMessage(DaemonTest):
    # One worker: the other session shares it, so a blocked worker would show.
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def fifo_over(self, path):
        """Atomically replace the file at path by a FIFO, as a mail-uid process could."""
        tmp = os.path.join(os.path.dirname(os.path.dirname(path)), "tmp", "fifo")
        os.mkfifo(tmp, 0o600)
        if IS_ROOT:
            os.chown(tmp, pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid)
        os.rename(tmp, path)
        # Should a worker still open it for reading, a writer lets that open
        # return, so a failing run does not leave a process stuck behind.
        self.addCleanup(self.unblock, path)

    @staticmethod
    def unblock(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    def test_retr_of_a_fifo_answers_and_the_worker_goes_on(self):
        victim = self.d.deliver("alice", MESSAGE, name="1000000001.M1P1.test:2,",
                                subdir="cur")
        self.d.deliver("alice", OTHER, name="1000000002.M2P1.test:2,", subdir="cur")
        self.d.deliver("bob", OTHER, name="1000000003.M3P1.test:2,", subdir="cur")
        self.d.start()
        alice = self.d.connect(timeout=10)
        self.assertEqual(alice.login("alice", "alice-secret"), "+OK Logged in, 2 messages")
        self.fifo_over(victim)

        self.assertEqual(alice.cmd("RETR 1"),
                         "-ERR [SYS/PERM] Message 1 cannot be read (not a regular file)")
        self.assertEqual(alice.cmd("TOP 1 0"),
                         "-ERR [SYS/PERM] Message 1 cannot be read (not a regular file)")
        # The same session goes on with the other message.
        alice.send("RETR 2\r\n")
        self.assertEqual(alice.line() + "\r\n" + alice.raw_multiline().decode() + ".\r\n",
                         retr_wire(OTHER).decode())
        self.d.wait_log("user=alice: message 1 (cur/1000000001.M1P1.test:2,) is not a "
                        "regular file")

        # Another session on the same worker is served.
        bob = self.d.connect(timeout=10)
        self.assertEqual(bob.login("bob", "bob-secret"), "+OK Logged in, 1 messages")
        bob.send("RETR 1\r\n")
        self.assertEqual(bob.line(), "+OK %d octets" % len(OTHER.replace(b"\n", b"\r\n")))
        bob.raw_multiline()
        self.assertEqual(bob.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        self.assertEqual(alice.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        alice.close()
        bob.close()
        # The FIFO is still there, and nothing was deleted.
        self.assertTrue(os.path.exists(victim))
        self.assertEqual(self.d.stop(timeout=15), 0)


if __name__ == "__main__":
    main()

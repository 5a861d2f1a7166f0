"""The helper's socket cannot be taken over by other processes of the mail
user (issue 12, item 12): 300 connections to auth.sock held, and re-opened
as fast as they are closed, by a process running as the mail user do not
keep a worker from getting answers, also a worker started during the flood."""
import grp
import os
import pwd
import signal
import socket
import time

from fastpop_harness import IS_ROOT, MAIL_GROUP, MAIL_USER, DaemonTest, main, wait_until


def hog(path, count, seconds, ready_fd):
    """In a child: hold count connections to path as the mail user, reopening closed ones."""
    if IS_ROOT:
        os.setgroups([])
        os.setgid(grp.getgrnam(MAIL_GROUP).gr_gid)
        os.setuid(pwd.getpwnam(MAIL_USER).pw_uid)
    socks = []
    deadline = time.monotonic() + seconds
    told = False
    while time.monotonic() < deadline:
        socks = [s for s in socks if alive(s)]
        while len(socks) < count and time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.setblocking(False)
            try:
                s.connect(path)
            except (BlockingIOError, ConnectionRefusedError, OSError):
                s.close()
                break
            socks.append(s)
        if not told and len(socks) >= count:
            os.write(ready_fd, b"x")
            told = True
        time.sleep(0.01)
    os._exit(0)


def alive(s):
    try:
        if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
            s.close()
            return False
    except BlockingIOError:
        return True
    except OSError:
        s.close()
        return False
    return True


class PeerSlots(DaemonTest):
    workers = 1
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    extra_config = "auth_cache_ttl = 0s\n"

    def start_hog(self):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                hog(os.path.join(self.d.run_dir, "auth.sock"), 300, 60, w)
            finally:
                os._exit(1)
        os.close(w)
        self.addCleanup(self.stop_hog, pid)
        # Wait (bounded) until the hog holds its connections.
        os.set_blocking(r, False)
        wait_until(lambda: self._readable(r), timeout=20, what="300 connections to auth.sock")
        os.close(r)
        return pid

    @staticmethod
    def _readable(fd):
        try:
            return os.read(fd, 1) == b"x"
        except BlockingIOError:
            return False

    @staticmethod
    def stop_hog(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)

    def login(self, user):
        p = self.d.connect(timeout=20)
        try:
            return p.login(user, self.d.users[user])
        finally:
            p.close()

    def test_hog_does_not_cut_workers_off(self):
        self.d.start()
        self.start_hog()
        time.sleep(1.0)   # the helper has gone through the hog's connections
        r = self.login("alice")
        self.assertTrue(r.startswith("+OK"), r)
        # A worker started now connects while the hog keeps re-opening its connections.
        old = self.d.workers_pids()
        self.assertEqual(len(old), 1)
        os.kill(old[0], signal.SIGKILL)
        wait_until(lambda: (lambda w: len(w) == 1 and w[0] != old[0])(self.d.workers_pids()),
                   timeout=15, what="a new worker")
        time.sleep(1.0)
        r = self.login("bob")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertIn("(not a worker of this server)", self.d.log())


if __name__ == "__main__":
    main()

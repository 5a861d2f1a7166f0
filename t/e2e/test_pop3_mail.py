"""What a POP3 session does to the maildir on disk, and what concurrency
does to sessions: DELE only at QUIT, new/ -> cur/ and flags, order, UIDLs,
tmp/ cleanup, [IN-USE] across and within workers, a 50 MB RETR in bounded
memory, 200 concurrent users, a stalled reader not blocking others."""
import hashlib
import os
import re
import signal
import socket
import threading
import time

from fastpop_harness import (DaemonTest, Pop3, main, pop3_size, proc_status, read_exact,
                             retr_wire, rss_kib, stuff, wait_until)


# --- helpers ----------------------------------------------------------------

def fast_pop3_size(data):
    """pop3_size() with regexes, for files of tens of megabytes."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if data and not data.endswith(b"\n"):
        out += b"\n" if data.endswith(b"\r") else b"\r\n"
    return out


def server_socket_inode(server_port, client_port):
    """Inode of the daemon's end of our connection, from /proc/net/tcp."""
    want_local = ":%04X" % server_port
    want_remote = ":%04X" % client_port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote):
                if fields[9] != "0":
                    return fields[9]
    return None


def worker_of(d, p, timeout=5.0):
    """Pid of the worker process holding the server side of connection p."""
    client_port = p.sock.getsockname()[1]

    def find():
        inode = server_socket_inode(d.port, client_port)
        if inode is None:
            return None
        target = "socket:[%s]" % inode
        for pid in d.workers_pids():
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    try:
                        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                            return pid
                    except OSError:
                        pass
            except OSError:
                pass
        return None
    return wait_until(find, timeout, what="the worker serving port %d" % client_port)


def worker_index(d, pid):
    """N of the worker[N] tag this pid logs under."""
    m = re.search(r"worker\[(\d+)\] %d " % pid, d.log())
    return int(m.group(1)) if m else None


HEADERS = b"From: a@example.org\nTo: b@example.org\nSubject: test\n"


def msg(n):
    return HEADERS + b"\nmessage number %d\n" % n


class DirWatch:
    """inotify on one directory (ctypes: no module needed): what happened to
    which name, in order, while the block ran."""
    MASKS = ((0x40, "moved_from"), (0x80, "moved_to"), (0x200, "deleted"),
             (0x100, "created"))

    def __init__(self, path):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = sum(m for m, _ in self.MASKS)
        if self.libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def events(self):
        import struct
        data = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        out, off = [], 0
        while off + 16 <= len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, off)
            name = data[off + 16:off + 16 + length].rstrip(b"\0").decode()
            off += 16 + length
            out += [(what, name) for m, what in self.MASKS if mask & m]
        return out


class MailCase(DaemonTest):
    users = {"alice": "alice-secret", "bob": "bob-secret"}

    def root(self, user="alice"):
        return self.d.maildir(user)

    def session(self, user="alice", **kw):
        p = self.d.connect(**kw)
        r = p.login(user, self.d.users[user])
        self.assertTrue(r.startswith("+OK"), r)
        return p

    def retr(self, p, n, data):
        p.send("RETR %d\r\n" % n)
        want = retr_wire(data)
        self.assertEqual(read_exact(p, len(want)), want)

    def session_ended(self, port, reason):
        self.d.wait_log("port=%d reason=%s" % (port, reason))


# --- DELE: only QUIT deletes ------------------------------------------------

class DeleSemantics(MailCase):
    def setUp(self):
        super().setUp()
        for i in range(3):
            self.d.deliver("alice", msg(i), name="%d.M%dP1.dele" % (1700000000 + i, i))

    def test_dele_then_quit_removes_files(self):
        self.d.start()
        p = self.session()
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 3").startswith("+OK"))
        # Nothing is removed before QUIT.
        self.assertEqual(len(self.d.messages("alice")), 3)
        r = p.cmd("QUIT")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertRegex(r, r"\b2\b")
        self.assertEqual(self.d.messages("alice"), ["cur/1700000001.M1P1.dele:2,"])
        self.assertTrue(p.closed_by_server(timeout=10))
        port = p.sock.getsockname()[1]
        p.close()
        self.session_ended(port, "quit")
        self.assertIn("dele=2 deleted=2", self.d.log())
        q = self.session()
        self.assertEqual(q.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(1))))
        self.retr(q, 1, msg(1))
        q.close()

    def test_dele_then_drop_deletes_nothing(self):
        self.d.start()
        p = self.session()
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        port = p.sock.getsockname()[1]
        p.close()
        self.d.wait_log("port=%d reason=disconnected" % port)
        self.assertEqual(len(self.d.messages("alice")), 3)
        q = self.session()
        self.assertTrue(q.cmd("STAT").startswith("+OK 3 "))
        q.close()

    def test_dele_quit_then_immediate_close_still_deletes(self):
        # The client sent QUIT: UPDATE happens even if it never reads the reply.
        self.d.start()
        p = self.session()
        p.send("DELE 2\r\nQUIT\r\n")
        p.close()
        wait_until(lambda: len(self.d.messages("alice")) == 2, 10,
                   what="message 2 deleted after pipelined DELE+QUIT")
        # The update runs to its end alone (the unlinks, then the fsync of cur/ and the
        # index record), then lets the lock go: a next login gets in once it has, and not
        # before (bounded: a lock never released fails here).
        def logged_in():
            q = self.d.connect()
            r = q.login("alice", self.d.users["alice"])
            if r.startswith("-ERR [IN-USE]"):
                q.close()
                return False
            self.assertTrue(r.startswith("+OK"), r)
            self.assertTrue(q.cmd("STAT").startswith("+OK 2 "))
            q.close()
            return True
        wait_until(logged_in, 10, what="the lock released after the update")

    def test_dele_then_kill_worker_deletes_nothing_and_unlocks(self):
        self.d.start()
        p = self.session()
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        victim = worker_of(self.d, p)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in self.d.workers_pids(), what="the worker to die")
        self.assertTrue(p.closed_by_server(timeout=5))
        p.close()
        self.assertEqual(len(self.d.messages("alice")), 3)
        # The lock died with the worker: the first attempt gets in.
        q = self.d.connect()
        self.assertTrue(q.line().startswith("+OK"))
        self.assertTrue(q.cmd("USER alice").startswith("+OK"))
        r = q.cmd("PASS alice-secret")
        self.assertTrue(r.startswith("+OK"), r)
        self.assertTrue(q.cmd("STAT").startswith("+OK 3 "))
        q.close()

    def test_message_deleted_by_another_program(self):
        self.d.start()
        p = self.session()
        os.unlink(os.path.join(self.root(), "cur", "1700000000.M0P1.dele:2,"))
        r = p.cmd("RETR 1")
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.retr(p, 2, msg(1))
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 3").startswith("+OK"))
        r = p.cmd("QUIT")
        self.assertEqual(r, "+OK Logging out, 2 messages deleted")
        names = self.d.messages("alice")
        self.assertEqual(len(names), 1)
        self.assertTrue(names[0].startswith("cur/1700000001.M1P1.dele:2,"), names)
        p.close()


class DeleIdle(MailCase):
    extra_config = "idle_timeout = 5s\n"

    def test_dele_then_idle_timeout_deletes_nothing(self):
        self.d.deliver("alice", msg(1))
        self.d.deliver("alice", msg(2))
        self.d.start()
        p = self.session(timeout=20)
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        self.assertTrue(p.closed_by_server(timeout=15), "idle session not closed")
        self.session_ended(p.sock.getsockname()[1], "idle-timeout")
        p.close()
        self.assertEqual(len(self.d.messages("alice")), 2)
        q = self.session()
        self.assertTrue(q.cmd("STAT").startswith("+OK 2 "))
        q.close()


# --- maildir ------------------------------------------------------------------

class Maildir(MailCase):
    def test_new_moves_to_cur_and_retr_sets_seen(self):
        a = self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host:2,F", subdir="cur")
        self.d.deliver("alice", msg(3), name="1700000003.M3P1.host:2,T", subdir="cur")
        self.d.deliver("alice", msg(4), name="1700000004.M4P1.host")
        self.d.start()
        p = self.session()
        self.assertFalse(os.path.exists(a))
        self.assertEqual(self.d.messages("alice"), [
            "cur/1700000001.M1P1.host:2,", "cur/1700000002.M2P1.host:2,F",
            "cur/1700000003.M3P1.host:2,T", "cur/1700000004.M4P1.host:2,"])
        for i in range(3):
            self.retr(p, i + 1, msg(i + 1))
        self.assertTrue(p.cmd("TOP 4 0").startswith("+OK"))
        p.multiline()
        self.assertEqual(p.cmd("NOOP"), "+OK")
        # The flags come at the session's end (a message deleted then is never renamed).
        self.assertEqual(self.d.messages("alice"), [
            "cur/1700000001.M1P1.host:2,", "cur/1700000002.M2P1.host:2,F",
            "cur/1700000003.M3P1.host:2,T", "cur/1700000004.M4P1.host:2,"])
        # A second RETR changes nothing and still works.
        self.retr(p, 1, msg(1))
        self.assertEqual(p.cmd("UIDL 1"), "+OK 1 1700000001.M1P1.host")
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        p.close()
        self.assertEqual(self.d.messages("alice"), [
            "cur/1700000001.M1P1.host:2,S", "cur/1700000002.M2P1.host:2,FS",
            "cur/1700000003.M3P1.host:2,ST", "cur/1700000004.M4P1.host:2,"])

    def test_retrieved_then_deleted_message_is_never_renamed(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host")
        self.d.start()
        p = self.session()
        cur = os.path.join(self.root(), "cur")
        with DirWatch(cur) as watch:
            self.retr(p, 1, msg(1))
            self.retr(p, 2, msg(2))
            self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
            self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 1 messages deleted")
            events = watch.events()
        p.close()
        # Message 1 was only unlinked; message 2, kept, got its flag.
        self.assertEqual(events, [("deleted", "1700000001.M1P1.host:2,"),
                                  ("moved_from", "1700000002.M2P1.host:2,"),
                                  ("moved_to", "1700000002.M2P1.host:2,S")])
        self.assertEqual(self.d.messages("alice"), ["cur/1700000002.M2P1.host:2,S"])

    def test_retr_then_drop_still_marks_seen(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host")
        self.d.start()
        p = self.session()
        self.retr(p, 2, msg(2))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        port = p.sock.getsockname()[1]
        p.close()
        self.d.wait_log("port=%d reason=disconnected" % port)
        # No QUIT: nothing deleted, but what was retrieved is seen.
        self.assertEqual(self.d.messages("alice"), [
            "cur/1700000001.M1P1.host:2,", "cur/1700000002.M2P1.host:2,S"])

    def test_flag_rename_by_another_program(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host")
        self.d.start()
        p = self.session()
        self.assertEqual(p.cmd("UIDL 1"), "+OK 1 1700000001.M1P1.host")
        cur = os.path.join(self.root(), "cur")
        os.rename(os.path.join(cur, "1700000001.M1P1.host:2,"),
                  os.path.join(cur, "1700000001.M1P1.host:2,F"))
        os.rename(os.path.join(cur, "1700000002.M2P1.host:2,"),
                  os.path.join(cur, "1700000002.M2P1.host:2,R"))
        self.retr(p, 1, msg(1))
        self.retr(p, 2, msg(2))
        self.assertEqual(p.cmd("UIDL 1"), "+OK 1 1700000001.M1P1.host")
        self.assertEqual(p.cmd("UIDL 2"), "+OK 2 1700000002.M2P1.host")
        self.assertTrue(p.cmd("TOP 1 0").startswith("+OK"))
        self.assertEqual(p.multiline(), pop3_size(HEADERS + b"\n"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        # Renamed again after our RETR: DELE still finds it, and so does the Seen flag.
        os.rename(os.path.join(cur, "1700000002.M2P1.host:2,R"),
                  os.path.join(cur, "1700000002.M2P1.host:2,RT"))
        os.rename(os.path.join(cur, "1700000001.M1P1.host:2,F"),
                  os.path.join(cur, "1700000001.M1P1.host:2,FT"))
        self.assertTrue(p.cmd("DELE 2").startswith("+OK"))
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 1 messages deleted")
        self.assertEqual(self.d.messages("alice"), ["cur/1700000001.M1P1.host:2,FST"])
        p.close()

    def test_delivery_during_session_seen_by_next_session(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.start()
        p = self.session()
        late = self.d.deliver("alice", msg(2), name="1700000002.M2P1.host")
        self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(1))))
        self.assertTrue(p.cmd("LIST").startswith("+OK"))
        self.assertEqual(p.multiline(), b"1 %d\r\n" % len(pop3_size(msg(1))))
        self.assertTrue(p.cmd("RETR 2").startswith("-ERR"))
        self.assertTrue(p.cmd("DELE 1").startswith("+OK"))
        self.assertEqual(p.cmd("QUIT"), "+OK Logging out, 1 messages deleted")
        p.close()
        self.assertTrue(os.path.exists(late))
        q = self.session()
        self.assertEqual(q.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(2))))
        self.assertEqual(q.cmd("UIDL 1"), "+OK 1 1700000002.M2P1.host")
        self.retr(q, 1, msg(2))
        q.close()

    def test_message_order(self):
        names = ["1000.a", "999.b", "1000.A", "abc.x", "1000.a0", "20000000000.z", "0999.c"]
        for n in names:
            self.d.deliver("alice", b"Subject: " + n.encode() + b"\n\n" + n.encode() + b"\n",
                           name=n)
        self.d.start()
        p = self.session()
        self.assertTrue(p.cmd("UIDL").startswith("+OK"))
        order = [l.split(" ", 1)[1] for l in p.multiline().decode().split("\r\n")[:-1]]
        # Timestamp (leading number) first, then the name.
        self.assertEqual(order, ["abc.x", "0999.c", "999.b", "1000.A", "1000.a", "1000.a0",
                                 "20000000000.z"])
        for i, n in enumerate(order):
            self.retr(p, i + 1, b"Subject: " + n.encode() + b"\n\n" + n.encode() + b"\n")
        p.close()

    def test_dot_files_skipped(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", b"junk\n", name=".hidden-new")
        self.d.deliver("alice", b"junk\n", name=".hidden-cur:2,", subdir="cur")
        self.d.deliver("alice", b"junk\n", name=".1700000000.M0P0.x", subdir="cur")
        self.d.start()
        p = self.session()
        self.assertEqual(p.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(1))))
        self.assertEqual(p.cmd("UIDL 1"), "+OK 1 1700000001.M1P1.host")
        self.assertTrue(p.cmd("LIST 2").startswith("-ERR"))
        p.close()
        root = self.root()
        self.assertTrue(os.path.exists(os.path.join(root, "new", ".hidden-new")))
        self.assertTrue(os.path.exists(os.path.join(root, "cur", ".hidden-cur:2,")))

    def test_old_tmp_files_removed_at_login(self):
        tmp = os.path.join(self.root(), "tmp")
        now = time.time()
        ages = {"old": 37 * 3600, "just-old": 36 * 3600 + 120, "fresh": 3600,
                "almost": 35 * 3600}
        for name, age in ages.items():
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(b"partial delivery\n")
            os.utime(path, (now - age, now - age))
        self.d.start()
        p = self.session()
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        self.assertEqual(sorted(os.listdir(tmp)), ["almost", "fresh"])
        p.close()

    def test_missing_maildir_is_created(self):
        import shutil
        root = self.root("bob")
        shutil.rmtree(root)
        self.d.start()
        p = self.session("bob")
        self.assertEqual(p.cmd("STAT"), "+OK 0 0")
        for sub in ("cur", "new", "tmp"):
            self.assertTrue(os.path.isdir(os.path.join(root, sub)), sub)
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        # Mail delivered there afterwards is seen.
        self.d.deliver("bob", msg(7))
        q = self.session("bob")
        self.assertEqual(q.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(7))))
        q.close()

    def test_uidl_stable_and_equal_to_unique_name(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host,S=99")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host:2,S", subdir="cur")
        self.d.deliver("alice", msg(3), name="1700000003.M3P1.host:2,", subdir="cur")
        self.d.start()
        expect = b"1 1700000001.M1P1.host,S=99\r\n2 1700000002.M2P1.host\r\n" \
                 b"3 1700000003.M3P1.host\r\n"
        for round_ in range(2):
            p = self.session()
            self.assertTrue(p.cmd("UIDL").startswith("+OK"))
            self.assertEqual(p.multiline(), expect, "session %d" % round_)
            if round_ == 0:
                for i in range(3):
                    self.retr(p, i + 1, msg(i + 1))
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            p.close()

    def test_uidl_of_names_needing_escape(self):
        raw = [
            b"1700000001.\xc3\xa9t\xc3\xa9.host",                # non-ASCII
            b"1700000002." + b"y" * 120,                        # too long
            b"1700000003.a b.host",                             # a space
            b"1700000004." + b"\xff" * 40,                      # long once escaped
            b"1700000005." + b"x" * 59,                         # exactly 70: verbatim
            b"1700000006." + b"x" * 60,                         # 71
            b"1700000007.tab\there\x7f",                        # controls
        ]
        for i, r in enumerate(raw):
            self.d.deliver("alice", msg(i), name=os.fsdecode(r))
        self.d.start()
        seen = []
        for round_ in range(2):
            p = self.session()
            self.assertTrue(p.cmd("UIDL").startswith("+OK"))
            lines = p.multiline().split(b"\r\n")[:-1]
            self.assertEqual(len(lines), len(raw))
            uidls = []
            for i, line in enumerate(lines):
                num, _, uidl = line.partition(b" ")
                self.assertEqual(num, b"%d" % (i + 1))
                self.assertTrue(1 <= len(uidl) <= 70, uidl)
                self.assertTrue(all(0x21 <= c <= 0x7E for c in uidl), uidl)
                self.assertEqual(p.cmd("UIDL %d" % (i + 1)).encode("latin-1"),
                                 b"+OK %d " % (i + 1) + uidl)
                uidls.append(uidl)
            self.assertEqual(len(set(uidls)), len(uidls), uidls)
            self.assertEqual(uidls[4], raw[4])
            if round_ == 0:
                for i in range(len(raw)):
                    self.retr(p, i + 1, msg(i))
            seen.append(uidls)
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
            p.close()
        self.assertEqual(seen[0], seen[1])


class NoMarkSeen(MailCase):
    extra_config = "mark_seen = no\n"

    def test_retr_keeps_name(self):
        self.d.deliver("alice", msg(1), name="1700000001.M1P1.host")
        self.d.deliver("alice", msg(2), name="1700000002.M2P1.host:2,F", subdir="cur")
        self.d.start()
        p = self.session()
        self.retr(p, 1, msg(1))
        self.retr(p, 2, msg(2))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertEqual(self.d.messages("alice"), [
            "cur/1700000001.M1P1.host:2,", "cur/1700000002.M2P1.host:2,F"])
        p.close()


# --- [IN-USE] ---------------------------------------------------------------

class InUse(MailCase):
    workers = 2
    extra_config = "max_connections_per_ip = 1000\n"

    def test_second_login_refused_on_other_and_same_worker(self):
        self.d.deliver("alice", msg(1))
        self.d.start()
        conns = {}
        held = []
        deadline = time.monotonic() + 20
        # Idle workers share the listener with EPOLLEXCLUSIVE: one after the
        # other, connections go to the same worker until it holds a clear
        # excess (more than 1.5 x its share + 64), then the other takes them.
        while time.monotonic() < deadline and len(held) < 400:
            burst = [self.d.connect() for _ in range(12)]
            for p in burst:
                self.assertTrue(p.line().startswith("+OK"))
                held.append(p)
                conns.setdefault(worker_of(self.d, p), []).append(p)
            if len(conns) == 2 and any(len(v) >= 2 for v in conns.values()):
                break
        self.assertEqual(len(conns), 2, "all %d connections went to one worker" % len(held))
        w_a = next(w for w, v in conns.items() if len(v) >= 2)
        w_b = next(w for w in conns if w != w_a)
        first, same = conns[w_a][0], conns[w_a][1]
        other = conns[w_b][0]

        self.assertTrue(first.cmd("USER alice").startswith("+OK"))
        self.assertTrue(first.cmd("PASS alice-secret").startswith("+OK"))
        self.d.wait_log("worker[%d] %d info: login user=alice" %
                        (worker_index(self.d, w_a), w_a))
        for p, where in ((other, "another worker"), (same, "the same worker")):
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            r = p.cmd("PASS alice-secret")
            self.assertTrue(r.startswith("-ERR [IN-USE] "), "%s: %r" % (where, r))
            # Still in AUTHORIZATION, not logged in.
            self.assertTrue(p.cmd("STAT").startswith("-ERR"), where)
        # The holder is unaffected.
        self.assertTrue(first.cmd("DELE 1").startswith("+OK"))
        self.assertTrue(first.cmd("QUIT").startswith("+OK"))
        # Once it has quit, the others get in (the lock went at QUIT).
        for p in (other, same):
            self.assertTrue(p.cmd("USER alice").startswith("+OK"))
            r = p.cmd("PASS alice-secret")
            self.assertTrue(r.startswith("+OK"), r)
            self.assertEqual(p.cmd("STAT"), "+OK 0 0")
            self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        # Other users are not locked out by alice's session.
        for p in held:
            p.close()


# --- big message, many users, fairness ---------------------------------------

def big_message(size):
    block = (b"x" * 75 + b"\n") * 400 + b".\n..dot\n" + b"CRLF line\r\n" + b"\rlone\n"
    head = HEADERS + b"Subject: big\n\n"
    n = (size - len(head)) // len(block) + 1
    return head + block * n + b"tail without newline"


class BigMessage(MailCase):
    workers = 1

    def test_50mb_retr_streams_in_bounded_memory(self):
        data = big_message(50 * 1024 * 1024)
        want_body = fast_pop3_size(data)
        # The fast oracle agrees with the harness's on a slice.
        sample = data[:300000]
        self.assertEqual(fast_pop3_size(sample), pop3_size(sample))
        self.d.deliver("alice", data)
        self.d.start()
        worker = self.d.workers_pids()[0]
        p = self.session(timeout=30)
        self.assertEqual(p.cmd("LIST 1"), "+OK 1 %d" % len(want_body))
        base = rss_kib(worker)
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        p.send("RETR 1\r\n")
        status = p.line()
        self.assertEqual(status, "+OK %d octets" % len(want_body))
        parts = [p.buf]
        p.buf = b""
        got = len(parts[0])
        tail = parts[0][-5:]
        peak = base
        t0 = time.monotonic()
        deadline = t0 + 60
        reads = 0
        p.sock.settimeout(10)
        while time.monotonic() < deadline:
            slow = time.monotonic() - t0 < 1.5
            chunk = p.sock.recv(64 * 1024 if slow else 1 << 20)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            reads += 1
            if slow:
                time.sleep(0.004)
            if slow or reads % 20 == 0:
                peak = max(peak, rss_kib(worker))
            tail = (tail + chunk)[-5:]
            if tail == b"\r\n.\r\n":
                break
        raw = b"".join(parts)
        self.assertTrue(raw.endswith(b"\r\n.\r\n"), "incomplete RETR: %d octets" % len(raw))
        body = raw[:-3]
        self.assertEqual(len(body), len(stuff(want_body)))
        unstuffed = body.replace(b"\r\n..", b"\r\n.")
        if unstuffed.startswith(b".."):
            unstuffed = unstuffed[1:]
        self.assertEqual(hashlib.sha256(unstuffed).hexdigest(),
                         hashlib.sha256(want_body).hexdigest())
        self.assertEqual(hashlib.sha256(body).hexdigest(),
                         hashlib.sha256(stuff(want_body)).hexdigest())
        self.assertLess(peak - base, 20 * 1024,
                        "worker RSS grew %d KiB during a 50 MB RETR" % (peak - base))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        p.close()


class ManyUsers(MailCase):
    workers = 2
    extra_config = "max_connections_per_ip = 1000\n"
    N = 200

    def setUp(self):
        super().setUp()
        self.mail = {}
        for i in range(self.N):
            user = "user%03d" % i
            self.d.add_user(user, "pw-%d secret" % i)
            msgs = [HEADERS + b"X-User: %s\n\n.%s first\n" % (user.encode(), user.encode()),
                    b"Subject: %d\n\n%s\n" % (i, user.encode() * (i + 1))]
            for k, m in enumerate(msgs):
                self.d.deliver(user, m, name="%d.M%dP%d.many" % (1700000000 + k, k, i))
            self.mail[user] = msgs

    def test_200_concurrent_sessions(self):
        self.d.start()
        barrier = threading.Barrier(self.N, timeout=40)
        errors = []
        done = []

        def client(user):
            p = None
            try:
                p = Pop3(self.d.port, timeout=30)
                r = p.login(user, self.d.users[user])
                assert r.startswith("+OK"), "%s login: %r" % (user, r)
                barrier.wait()          # all 200 are logged in at once here
                msgs = self.mail[user]
                r = p.cmd("STAT")
                assert r == "+OK 2 %d" % sum(len(pop3_size(m)) for m in msgs), (user, r)
                for k, m in enumerate(msgs):
                    p.send("RETR %d\r\n" % (k + 1))
                    want = retr_wire(m)
                    got = read_exact(p, len(want), timeout=30)
                    assert got == want, "%s RETR %d: %r" % (user, k + 1, got[:80])
                assert p.cmd("DELE 1").startswith("+OK")
                r = p.cmd("QUIT")
                assert r == "+OK Logging out, 1 messages deleted", (user, r)
                done.append(user)
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append("%s: %r" % (user, e))
                barrier.abort()
            finally:
                if p:
                    p.close()

        threads = [threading.Thread(target=client, args=("user%03d" % i,), daemon=True)
                   for i in range(self.N)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        self.assertEqual(errors[:5], [])
        self.assertEqual(len(done), self.N)
        for i in range(self.N):
            user = "user%03d" % i
            self.assertEqual(self.d.messages(user), ["cur/1700000001.M1P%d.many:2,S" % i])


class Fairness(MailCase):
    workers = 1

    def test_stalled_reader_does_not_block_the_worker(self):
        big = big_message(20 * 1024 * 1024)
        self.d.deliver("alice", big)
        self.d.deliver("bob", msg(1))
        self.d.start()
        worker = self.d.workers_pids()[0]
        a = self.session(timeout=30)
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        base = rss_kib(worker)
        a.send("RETR 1\r\n")           # and do not read
        time.sleep(0.5)
        t0 = time.monotonic()
        b = self.session("bob", timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0, "login took too long")
        for i in range(10):
            t = time.monotonic()
            self.assertEqual(b.cmd("NOOP"), "+OK")
            self.assertLess(time.monotonic() - t, 2.0, "NOOP %d was slow" % i)
        t = time.monotonic()
        self.retr(b, 1, msg(1))
        self.assertEqual(b.cmd("STAT"), "+OK 1 %d" % len(pop3_size(msg(1))))
        self.assertLess(time.monotonic() - t, 2.0)
        self.assertLess(rss_kib(worker) - base, 20 * 1024)
        self.assertEqual(b.cmd("QUIT"), "+OK Logging out, 0 messages deleted")
        b.close()
        # The stalled client then reads all of it, intact.
        want = b"+OK %d octets\r\n" % len(fast_pop3_size(big)) + \
            stuff(fast_pop3_size(big)) + b".\r\n"
        got = read_exact(a, len(want), timeout=60)
        self.assertEqual(len(got), len(want))
        self.assertTrue(got == want, "stalled client's RETR differs")
        self.assertEqual(a.cmd("NOOP"), "+OK")
        a.close()


if __name__ == "__main__":
    main()

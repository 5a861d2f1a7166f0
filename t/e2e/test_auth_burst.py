"""Many connections pipeline two logins each while the auth helper is killed
and restarted (issue 12 item 2: the worker's helper client freed a request
twice when an answer's callback ran the client's next PASS and that send
found the helper gone). Every PASS gets an answer, the worker survives, and
the sanitizer build reports nothing (the harness checks the daemon log)."""
import os
import selectors
import signal
import socket
import subprocess
import time

from fastpop_harness import DaemonTest, main, wait_until

CONNECTIONS = 300
PIPELINED = b"USER a\r\nPASS x\r\nUSER a\r\nPASS y\r\n"
# The greeting, +OK to each USER, an answer to each PASS.
LINES_PER_CONNECTION = 5


def burst(port, kill_after_answers, kill):
    """Open every connection, send the pipelined logins to all at once, and
    call kill() once kill_after_answers connections have their first PASS
    answered (so answers arrive while other requests are out when the helper
    dies). Returns {sock: lines}."""
    socks = []
    for i in range(CONNECTIONS):
        # Spread over a few source addresses, like a real burst.
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=("127.0.0.%d" % (2 + i % 50), 0))
        s.setblocking(False)
        socks.append(s)
    for s in socks:
        s.sendall(PIPELINED)
    sel = selectors.DefaultSelector()
    got = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
        got[s] = b""
    done = set()
    killed = False
    deadline = time.monotonic() + 90
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                chunk = b""
            got[s] += chunk
            if not chunk or got[s].count(b"\r\n") >= LINES_PER_CONNECTION:
                sel.unregister(s)
                done.add(s)
        first_answers = sum(1 for s in socks if got[s].count(b"\r\n") >= 3)
        if not killed and first_answers >= kill_after_answers:
            kill()
            killed = True
    sel.close()
    answers = {s: got[s].decode("latin-1").split("\r\n") for s in socks}
    for s in socks:
        s.close()
    assert killed, "the helper answered too few logins to be killed in the middle"
    return answers


def slow_hash(password):
    """A SHA512-CRYPT hash: a few ms of helper time per check, so a burst
    keeps requests out at the helper while answers come back."""
    return subprocess.run(["openssl", "passwd", "-6", "-salt", "burstsalt", password],
                          check=True, stdout=subprocess.PIPE, timeout=30).stdout.decode().strip()


class AuthHelperBurst(DaemonTest):
    workers = 1
    extra_config = ("max_connections_per_ip = 1000\n"
                    "max_bad_commands = 100\n"
                    "max_auth_failures = 100\n")

    def kill_helper(self, sig):
        """End the helper while answers it sent wait unread at the worker:
        the worker is stopped meanwhile, so when it goes on, each answer it
        reads lets a client's next PASS go to a helper that is gone. SIGTERM:
        the helper answers all it has read and closes (the worker's next send
        fails with EPIPE); SIGKILL: it dies with requests unread (the
        worker's socket reports a reset)."""
        pids = self.d.helper_pids()
        self.assertEqual(len(pids), 1)
        worker = self.d.workers_pids()[0]
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(0.3)   # the helper answers what it has into the worker's socket
            os.kill(pids[0], sig)
            # On SIGTERM the helper first answers every request it has read, each a
            # SHA512-CRYPT and a PBKDF2 or two: slow under the sanitizer on a busy box.
            wait_until(lambda: pids[0] not in self.d.helper_pids(), timeout=90,
                       what="the helper to die")
        finally:
            os.kill(worker, signal.SIGCONT)
        self.killed.append(pids[0])

    def check(self, answers):
        for lines in answers.values():
            self.assertGreaterEqual(len(lines), LINES_PER_CONNECTION, lines)
            self.assertTrue(lines[0].startswith("+OK"), lines)
            self.assertEqual(lines[1], "+OK Send your password", lines)
            self.assertEqual(lines[3], "+OK Send your password", lines)
            for answer in (lines[2], lines[4]):
                self.assertTrue(answer in ("-ERR [AUTH] Authentication failed",
                                           "-ERR [SYS/TEMP] Temporary authentication failure, "
                                           "try again later",
                                           "-ERR [SYS/TEMP] Authentication service "
                                           "unavailable, try again later"), lines)

    def test_pipelined_logins_while_the_helper_dies(self):
        # add_user() gives every user one scheme: append this one by hand.
        with open(self.d.passwd, "a") as f:
            f.write("a:{SHA512-CRYPT}%s::::::\n" % slow_hash("z"))
        self.d.start()
        self.killed = []
        worker = self.d.workers_pids()
        self.assertEqual(len(worker), 1)
        for round_ in range(2):
            sig = (signal.SIGTERM, signal.SIGKILL)[round_]
            answers = burst(self.d.port, CONNECTIONS // 4 + round_ * 50,
                            lambda: self.kill_helper(sig))
            self.check(answers)
            # The master starts a new helper; logins work again through it.
            wait_until(lambda: len(self.d.helper_pids()) == 1 and
                       self.d.helper_pids()[0] not in self.killed, timeout=20,
                       what="a new auth helper")

            def login_works():
                p = self.d.connect()
                try:
                    return p.login("alice", "alice-secret").startswith("+OK Logged in")
                finally:
                    p.close()
            wait_until(login_works, timeout=20, what="a login through the new helper")
        # The same worker served it all: it never crashed.
        self.assertEqual(self.d.workers_pids(), worker)
        self.assertFalse([l for l in self.d.log().splitlines()
                          if "worker[" in l and "respawning" in l])
        self.assertGreaterEqual(self.d.log().count("auth helper connection lost"), 2)


if __name__ == "__main__":
    main()

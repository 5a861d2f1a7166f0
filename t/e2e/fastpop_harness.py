"""Shared helpers for the end-to-end tests: start the real fastpopd on
loopback with its own config, users and maildirs, talk POP3 to it, stop it
by pid. Standard library only.

Everything lives in a fresh directory under /tmp (searchable by the
unprivileged users the daemon drops to), removed at the end.
"""
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("FASTPOP_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
SRC = os.environ.get("FASTPOP_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
IS_ROOT = os.geteuid() == 0
MAIL_USER = "vmail" if IS_ROOT else pwd.getpwuid(os.getuid()).pw_name
MAIL_GROUP = "vmail" if IS_ROOT else grp.getgrgid(os.getgid()).gr_name
AUTH_USER = "fastpop" if IS_ROOT else MAIL_USER


def free_port():
    """A port nobody listens on right now (the daemon binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def proc_status(pid):
    """The fields of /proc/PID/status as a dict, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def children_of(pid):
    """Pids whose parent is pid (from /proc, no process names involved)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_status(int(entry))
        if st and st.get("PPid") == str(pid) and st.get("State", "")[:1] != "Z":
            kids.append(int(entry))
    return sorted(kids)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except FileNotFoundError:
        return ""


def rss_kib(pid):
    st = proc_status(pid)
    return int(st["VmRSS"].split()[0]) if st and "VmRSS" in st else 0


class Pop3:
    """A raw POP3 client: exact bytes in and out, for protocol tests."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=source)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def cmd(self, command):
        self.send(command + "\r\n")
        return self.line()

    def multiline(self):
        """The body of a multi-line response, dot-unstuffed, as bytes with CRLF."""
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a multi-line response")
            self.buf += chunk
        if self.buf.startswith(b".\r\n"):
            body, self.buf = b"", self.buf[3:]
        else:
            body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
            body += b"\r\n"
        lines = body.split(b"\r\n")
        return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)

    def raw_multiline(self):
        """The multi-line body exactly as sent (still dot-stuffed), without the final dot line."""
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a multi-line response")
            self.buf += chunk
        if self.buf.startswith(b".\r\n"):
            body, self.buf = b"", self.buf[3:]
            return body
        body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return body + b"\r\n"

    def login(self, user, password):
        greeting = self.line()
        assert greeting.startswith("+OK"), greeting
        r = self.cmd("USER " + user)
        assert r.startswith("+OK"), r
        return self.cmd("PASS " + password)

    def closed_by_server(self, timeout=5.0):
        """True once the server has closed the connection (EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pop3_size(data):
    """What RETR sends for a file, before dot-stuffing: LF as CRLF, CRLF kept,
    a final CRLF added to an unterminated last line."""
    out = bytearray()
    prev = None
    for b in data:
        if b == 0x0A and prev != 0x0D:
            out += b"\r\n"
        else:
            out.append(b)
        prev = b
    if data and data[-1:] != b"\n":
        out += b"\n" if data[-1:] == b"\r" else b"\r\n"
    return bytes(out)



def stuff(body):
    """Dot-stuff a POP3 body (every LF already preceded by CR, as pop3_size gives)."""
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\n.", b"\n..")


def retr_wire(data):
    """Everything RETR must send for a file: status line, stuffed body, final dot."""
    body = pop3_size(data)
    return b"+OK %d octets\r\n" % len(body) + stuff(body) + b".\r\n"


def read_exact(p, n, timeout=10.0):
    """Exactly n bytes from a Pop3 (its buffer first), or fewer on EOF, reset or timeout."""
    deadline = time.monotonic() + timeout
    while len(p.buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        p.sock.settimeout(left)
        try:
            chunk = p.sock.recv(1 << 20)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        p.buf += chunk
    got, p.buf = p.buf[:n], p.buf[n:]
    return got

class Daemon:
    """One fastpopd with its own directory, config, users and maildirs."""

    def __init__(self, workers=2, extra_config="", users=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="fastpop-e2e-")
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.workers = workers
        self.extra_config = extra_config
        self.proc = None
        self.log_start = 0      # where the current run's log lines begin (see start())
        self.conf = os.path.join(self.dir, "fastpop.conf")
        self.passwd = os.path.join(self.dir, "passwd")
        self.mail = os.path.join(self.dir, "mail")
        self.run_dir = os.path.join(self.dir, "run")
        self.log_path = os.path.join(self.dir, "fastpopd.log")
        os.makedirs(self.mail)
        self.users = {}
        for name, password in (users or {"alice": "alice-secret"}).items():
            self.add_user(name, password)
        self.write_config()

    # --- set-up -----------------------------------------------------------
    def config_text(self, extra=None):
        extra = self.extra_config if extra is None else extra
        # The brute-force penalty (1 s and more per failed login) would only slow
        # tests that fail logins on purpose; its own tests turn it on.
        if "auth_penalty" not in extra:
            extra = "auth_penalty = no\n" + extra
        # Likewise the helper's rate limit per address: every test client is 127.0.0.1.
        if "auth_rate_limit" not in extra:
            extra = "auth_rate_limit = 0\n" + extra
        return (
            "listen = 127.0.0.1:%d\n"
            "workers = %d\n"
            "user = %s\n"
            "group = %s\n"
            "auth_user = %s\n"
            "run_dir = %s\n"
            "state_dir = %s/state\n"
            "passwd_file = %s\n"
            "maildir = %s/%%n/Maildir\n"
            "log = stderr\n"
            "log_level = info\n"
            "shutdown_timeout = 5s\n"
            # Most tests speak plain POP3 on loopback; TLS tests override this.
            "plaintext_auth = yes\n"
            "%s" % (self.port, self.workers, MAIL_USER, MAIL_GROUP, AUTH_USER,
                    self.run_dir, self.dir, self.passwd, self.mail, extra))

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    def add_user(self, name, password, scheme="PLAIN"):
        self.users[name] = password
        with open(self.passwd, "w") as f:
            for user, pw in self.users.items():
                f.write("%s:{%s}%s::::::\n" % (user, scheme, pw))
        if IS_ROOT:
            os.chown(self.passwd, 0, grp.getgrnam(AUTH_USER).gr_gid)
            os.chmod(self.passwd, 0o640)
        self.maildir(name)

    def maildir(self, user):
        root = os.path.join(self.mail, user, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self._own(os.path.join(self.mail, user))
        return root

    def _own(self, top):
        if not IS_ROOT:
            return
        uid = pwd.getpwnam(MAIL_USER).pw_uid
        gid = grp.getgrnam(MAIL_GROUP).gr_gid
        for base, dirs, files in os.walk(top):
            os.chown(base, uid, gid)
            for name in files:
                os.chown(os.path.join(base, name), uid, gid)

    def deliver(self, user, data, name=None, subdir="new"):
        """Put a message file into the user's maildir; returns its path."""
        if isinstance(data, str):
            data = data.encode()
        root = self.maildir(user)
        Daemon._seq = getattr(Daemon, "_seq", 0) + 1
        name = name or "%d.M%06dP%d.e2e" % (int(time.time()), Daemon._seq, os.getpid())
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        path = os.path.join(root, subdir, name)
        os.rename(tmp, path)
        self._own(path)
        return path

    def messages(self, user):
        """File names in cur/ and new/ of a user's maildir, sorted."""
        root = self.maildir(user)
        names = []
        for sub in ("cur", "new"):
            names += [sub + "/" + n for n in os.listdir(os.path.join(root, sub))
                      if not n.startswith(".")]
        return sorted(names)

    # --- process ----------------------------------------------------------
    def start(self, wait=True, args=()):
        # Where this run's lines begin (the log is appended to across restarts).
        self.log_start = len(self.log())
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "fastpopd"), "-F", "-c", self.conf] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("fastpopd exited with %s:\n%s" %
                                     (self.proc.returncode, self.log()))
            kids = children_of(self.proc.pid)
            # The helper counts once it has exec'd fastpop-auth.
            if len(kids) < self.workers + 1 or len(self.helper_pids()) != 1:
                return False
            try:
                p = Pop3(self.port, timeout=2)
                ok = p.line().startswith("+OK")
                probe_port = p.sock.getsockname()[1]
                p.close()
                return probe_port if ok else False
            except OSError:
                return False
        probe_port = wait_until(ready, timeout, what="fastpopd to serve")
        # Workers answer nothing from the credential cache until the helper's penalty view
        # has reached them: a test that expects a cache hit must not race that.
        wait_until(lambda: self.log()[self.log_start:].count(
            "penalty view received from the auth helper") >= self.workers, timeout,
            what="the workers' penalty views")
        # The probe must be gone from the connection counts before a test starts.
        self.wait_log("port=%d reason=" % probe_port)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=10.0, count=1):
        return wait_until(lambda: self.log().count(text) >= count, timeout,
                          what="log line %r:\n%s" % (text, self.log()[-3000:]))

    def workers_pids(self):
        return [p for p in children_of(self.pid) if "fastpop-auth" not in cmdline(p)
                and self._is_worker(p)]

    def helper_pids(self):
        return [p for p in children_of(self.pid) if self._exe(p) == "fastpop-auth"]

    def metrics_pids(self):
        """The /metrics process (metrics_listen), once it has exec'd fastpop-metrics."""
        return [p for p in children_of(self.pid) if self._exe(p) == "fastpop-metrics"]

    @staticmethod
    def _exe(pid):
        try:
            return os.path.basename(os.readlink("/proc/%d/exe" % pid))
        except OSError:
            return ""

    @classmethod
    def _is_worker(cls, pid):
        # Workers are forked without exec: their executable is fastpopd itself.
        return cls._exe(pid) == "fastpopd"

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self, timeout=20.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for kid in children_of(self.pid):
                os.kill(kid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("fastpopd did not stop within %.0fs" % timeout)

    SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                       "runtime error:")

    def sanitizer_reports(self):
        """Lines where ASan/UBSan/LSan reported a problem in any daemon process."""
        return [l for l in self.log().splitlines() if any(m in l for m in self.SANITIZER_MARKS)]

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.proc is not None:
                self.log_file.close()
            reports = self.sanitizer_reports()
            log_tail = self.log()[-4000:]
            shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports in the daemon's log:\n%s\n%s" %
                                 ("\n".join(reports[:20]), log_tail))

    def connect(self, **kw):
        return Pop3(self.port, **kw)


class DaemonTest(unittest.TestCase):
    """A test case with one daemon per test, stopped and removed afterwards."""

    workers = 2
    extra_config = ""
    users = None

    def setUp(self):
        self.d = Daemon(workers=self.workers, extra_config=self.extra_config, users=self.users)
        # Cleanups run last-in first-out: the log is printed before the directory goes.
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self._dump_log_on_failure)

    def _dump_log_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        errors = getattr(outcome, "errors", None) or []
        result = getattr(outcome, "result", None)
        failed = any(exc for _, exc in errors) or (
            result is not None and any(t is self for t, _ in
                                       result.failures + result.errors))
        if failed:
            print("---- fastpopd log ----\n" + self.d.log()[-6000:])


def main():
    import warnings
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)

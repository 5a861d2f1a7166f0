"""The farm of issue 15 for the e2e tests (test_router.py, test_farm.py): a real
nginx with its mail module answers POP3 and asks fastpop-router (auth_http),
which checks the password through its auth helper against slapd and routes by
the user's mailHost over three backends (127.0.1.1-3, own state directories,
one shared maildir tree, mailbox_lock = shared, PROXY protocol from nginx).
The backends take passwords in the clear only through the proxy
(plaintext_auth = no, their proxy listener has plaintext_via_proxy).
"""
import os
import poplib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from fastpop_harness import IS_ROOT, Daemon, Pop3, children_of, free_port, wait_until
from ldap_fixture import Slapd, hash_ssha, ldap_config, person, secret_file
from tls_fixture import CertFactory

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
CLIENT_IP = "127.0.0.9"      # the POP3 client's own address, distinct from nginx's 127.0.0.1
CHECK_INTERVAL = 1           # router_check_interval of the test, seconds
CACHE_TTL = 4                # router_cache_ttl of the test, seconds
MOVE_DEADLINE = 15.0         # generous: a loaded machine; the design says about 1 interval + 2 s

USERS = {  # name: (password, mailHost or None)
    "amy": ("amy-pass", "pop1"),
    "bert": ("bert-pass", "pop2"),
    "cleo": ("cleo-pass", "pop3"),
    "dora": ("dora-pass", "pop1"),
    "ezra": ("ezra-pass", None),
}


def entry(uid, password, host):
    text = person(uid, hash_ssha(password))
    if host:
        # slapadd wants an entry's objectClass values together.
        text = text.replace("objectClass: posixAccount\n",
                            "objectClass: posixAccount\nobjectClass: inetLocalMailRecipient\n")
        text += "mailHost: %s\n" % host
    return text


class ClientPOP3(poplib.POP3):
    """poplib from CLIENT_IP, so the backends' logs can tell the client from nginx."""

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT_IP, 0))


class ClientPOP3_SSL(poplib.POP3_SSL):
    """POP3S from CLIENT_IP."""

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(CLIENT_IP, 0))
        return self.context.wrap_socket(sock, server_hostname=self.host)


class Nginx:
    def __init__(self, port, router_port, cert):
        self.dir = tempfile.mkdtemp(prefix="fastpop-nginx-")
        self.port = port
        self.tls_port = free_port()
        self.stls_port = free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        with open(self.conf, "w") as f:
            f.write("""load_module %(module)s;
daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log info;
events { worker_connections 256; }
mail {
    server_name mail.test;
    auth_http 127.0.0.1:%(router)d/auth;
    proxy_pass_error_message on;
    proxy_protocol on;
    pop3_auth plain;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    server {
        listen 127.0.0.1:%(port)d;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%(tls_port)d ssl;
        protocol pop3;
    }
    server {
        listen 127.0.0.1:%(stls_port)d;
        protocol pop3;
        starttls only;
    }
}
""" % {"module": MAIL_MODULE, "dir": self.dir, "router": router_port, "port": port,
       "tls_port": self.tls_port, "stls_port": self.stls_port, "cert": cert.cert,
       "key": cert.key})
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-c", self.conf, "-e",
                                      self.error_log], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: %s" % self.read_log())
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        wait_until(up, 15, what="nginx on port %d" % self.port)

    def read_log(self):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode(errors="replace")[-3000:]
            except FileNotFoundError:
                pass
        return text

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                for kid in children_of(self.proc.pid):
                    os.kill(kid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(IS_ROOT and os.path.exists(MAIL_MODULE),
                     "needs root and nginx's mail module (t/tools/setup-host.sh)")
class Farm(unittest.TestCase):
    """Starts the farm once per class; no tests of its own."""

    backend_extra = ""   # more configuration for every backend

    @classmethod
    def setUpClass(cls):
        cls.cleanups = []
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        cls.slapd = Slapd([entry(u, pw, h) for u, (pw, h) in USERS.items()], schemas=("misc",))
        cls.cleanups.append(cls.slapd.cleanup)
        cls.slapd.start()
        cls.shared = tempfile.mkdtemp(prefix="fastpop-shared-")
        os.chmod(cls.shared, 0o755)
        cls.cleanups.append(lambda: shutil.rmtree(cls.shared, ignore_errors=True))
        cls.backends = {}
        for n in (1, 2, 3):
            port = free_port()
            # Passwords in the clear only through nginx: the harness's own listener
            # (127.0.0.1, direct) refuses them.
            d = cls._daemon(
                "listen = 127.0.1.%d:%d proxy_protocol plaintext_via_proxy\n"
                "proxy_trusted = 127.0.0.1/32\n"
                "mailbox_lock = shared\n"
                "host_name = pop%d\n" % (n, port, n) + cls.backend_extra, plaintext=False)
            d.backend_addr = ("127.0.1.%d" % n, port)
            cls.backends["pop%d" % n] = d
        cls.router_port = free_port()
        cls.router_host = cls._daemon(
            "ldap_host_attribute = mailHost\n"
            "router_listen = 127.0.0.1:%d\n"
            "router_backends = %s\n"
            "router_check_interval = %ds\n"
            "router_cache_ttl = %ds\n"
            "router_proxy_protocol = yes\n" % (
                cls.router_port,
                " ".join("%s=%s:%d" % (name, d.backend_addr[0], d.backend_addr[1])
                         for name, d in sorted(cls.backends.items())),
                CHECK_INTERVAL, CACHE_TTL))
        for d in list(cls.backends.values()) + [cls.router_host]:
            d.start()
        for user in USERS:
            cls.router_host.maildir(user)
        cls.certs = CertFactory()
        cls.cleanups.append(cls.certs.cleanup)
        cls.nginx = Nginx(free_port(), cls.router_port,
                          cls.certs.issue("nginx", ["pop.example.test"]))
        cls.cleanups.append(cls.nginx.cleanup)
        cls.nginx.start()
        # The router has checked every backend once: every user lands on her mailHost.
        for user in ("amy", "bert", "cleo"):
            try:
                wait_until(lambda: cls._try_login(user) == USERS[user][1], MOVE_DEADLINE,
                           interval=0.3, what="%s routed to her mailHost" % user)
            except AssertionError as e:
                raise AssertionError("%s\nrouter host log:\n%s\nnginx:\n%s" % (
                    e, cls.router_host.log()[-3000:], cls.nginx.read_log()))

    @classmethod
    def _daemon(cls, extra, plaintext=True):
        d = Daemon(workers=1, users={"local-only": "local-secret"})
        cls.cleanups.append(d.cleanup)
        d.mail = cls.shared   # one maildir tree for every host
        d.extra_config = extra + ldap_config(cls.slapd.uri, secret_file(d.dir), "bind")
        text = d.config_text()
        if not plaintext:
            text = text.replace("plaintext_auth = yes\n", "plaintext_auth = no\n")
        d.write_config(text)
        return d

    @classmethod
    def proxied(cls, name, client_ip=CLIENT_IP, proxy_ip="127.0.0.1"):
        """A raw session on a backend's proxy listener, as nginx opens one: from
        proxy_ip with a PROXY v1 header naming client_ip; the greeting is read."""
        host, port = cls.backends[name].backend_addr
        p = Pop3(port, host=host, source=(proxy_ip, 0))
        p.send("PROXY TCP4 %s %s 40000 %d\r\n" % (client_ip, host, port))
        greeting = p.line()
        if not greeting.startswith("+OK"):
            p.close()
            raise AssertionError("greeting through PROXY: %s" % greeting)
        return p

    @classmethod
    def tearDownClass(cls):
        errors = []
        for fn in reversed(cls.cleanups):
            try:
                fn()
            except Exception as e:   # the rest must still be cleaned up, then it fails
                errors.append(e)
        if errors:
            raise AssertionError("cleanup: %s" % "\n".join(str(e) for e in errors))

    @classmethod
    def _logins(cls):
        """(backend name, number of 'login user=... ip=CLIENT_IP' lines) now."""
        return {name: sum(1 for line in d.log().splitlines()
                          if "login user=" in line and " ip=%s " % CLIENT_IP in line)
                for name, d in cls.backends.items()}

    @classmethod
    def _try_login(cls, user, password=None):
        """Log in through nginx, STAT, QUIT; the backend that logged it, or None."""
        before = {name: d.log().count("login user=%s ip=%s " % (user, CLIENT_IP))
                  for name, d in cls.backends.items()}
        try:
            p = ClientPOP3("127.0.0.1", cls.nginx.port, timeout=10)
            try:
                p.user(user)
                p.pass_(password or USERS[user][0])
                p.stat()
                p.quit()
            finally:
                p.close()
        except (poplib.error_proto, OSError, EOFError):
            return None
        for name, d in cls.backends.items():
            if d.log().count("login user=%s ip=%s " % (user, CLIENT_IP)) > before[name]:
                return name
        return "?"

    def landed(self, user, want=None, avoid=None):
        """Log in until the route is what the test expects (bounded); the backend."""
        got = []

        def ok():
            got.append(self._try_login(user))
            return got[-1] is not None and got[-1] != "?" and \
                (want is None or got[-1] == want) and (avoid is None or got[-1] != avoid)
        wait_until(ok, MOVE_DEADLINE, interval=0.3,
                   what="%s on %s (got %s)\nrouter host log:\n%s\nnginx:\n%s" % (
                       user, want or "not " + str(avoid), got[-5:],
                       self.router_host.log()[-3000:], self.nginx.read_log()))
        return got[-1]

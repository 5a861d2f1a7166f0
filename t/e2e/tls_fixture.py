"""Test certificates for the TLS end-to-end tests, made with the openssl CLI,
and small TLS client helpers (standard library only).

A CertFactory owns one directory (readable by the daemon's users) with a
test CA; it issues server certificates (RSA or ECDSA) with SAN DNS names and
IP:127.0.0.1, each with a distinct serial and CN, so a test can tell which
certificate the server presented.
"""
import os
import re
import shutil
import socket
import base64
import ssl
import subprocess
import tempfile

from fastpop_harness import DaemonTest, Pop3, free_port

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def run_openssl(args, timeout=60, input=None):
    kw = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    r = subprocess.run([OPENSSL] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, **kw)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s" %
                             (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


class Cert:
    def __init__(self, cert, key, cn, serial, key_type, names):
        self.cert = cert
        self.key = key
        self.cn = cn
        self.serial = serial
        self.key_type = key_type
        self.names = names

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()

    def der(self):
        return ssl.PEM_cert_to_DER_cert(self.pem().decode())


class CertFactory:
    """A test CA in its own directory; cleanup() removes everything."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fastpop-tls-")
        os.chmod(self.dir, 0o755)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.serial = 0x1000
        run_openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key,
                     "-out", self.ca, "-days", "3", "-subj", "/CN=fastpop test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def issue(self, name, dns_names, key_type="rsa", cn=None, ips=("127.0.0.1",),
              directory=None):
        """A server certificate and key: files NAME.pem / NAME.key."""
        directory = directory or self.dir
        self.serial += 1
        serial = self.serial
        cn = cn or "%s #%d" % (dns_names[0] if dns_names else name, serial)
        cert = os.path.join(directory, name + ".pem")
        key = os.path.join(directory, name + ".key")
        csr = os.path.join(directory, name + ".csr")
        ext = os.path.join(directory, name + ".ext")
        if key_type == "rsa":
            newkey = ["-newkey", "rsa:2048"]
        elif key_type == "ec":
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        else:
            raise ValueError(key_type)
        run_openssl(["req", "-new"] + newkey + ["-nodes", "-keyout", key, "-out", csr,
                                                "-subj", "/CN=%s" % cn])
        san = ["DNS:%s" % n for n in dns_names] + ["IP:%s" % ip for ip in ips]
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % ",".join(san))
        run_openssl(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                     "-set_serial", str(serial), "-days", "3", "-sha256", "-extfile", ext,
                     "-out", cert])
        os.unlink(csr)
        os.unlink(ext)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)
        return Cert(cert, key, cn, serial, key_type, list(dns_names))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def der_info(der):
    """(serial as int, subject CN, 'rsa'|'ec') of a DER certificate."""
    text = run_openssl(["x509", "-inform", "DER", "-noout", "-serial", "-subject", "-text"],
                       input=der).decode(errors="replace")
    serial = int(re.search(r"^serial=([0-9A-Fa-f]+)", text, re.M).group(1), 16)
    cn = re.search(r"^subject=.*?CN\s*=\s*(.*)$", text, re.M).group(1).strip()
    algo = re.search(r"Public Key Algorithm:\s*(\S+)", text).group(1)
    kind = {"rsaEncryption": "rsa", "id-ecPublicKey": "ec"}.get(algo, algo)
    return serial, cn, kind


def peer_info(sslsock):
    return der_info(sslsock.getpeercert(binary_form=True))


def client_context(ca=None, min_version=None, max_version=None, ciphers=None):
    """A client context; verification on (hostname checked) when ca is given."""
    if ca is not None:
        ctx = ssl.create_default_context(cafile=ca)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def legacy_context(version):
    """A client that speaks exactly one old TLS version (OpenSSL 3 hides them
    below security level 0)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def tls_connect(port, ctx, server_hostname="127.0.0.1", session=None, timeout=10.0,
                source=None):
    """Implicit TLS: a harness Pop3 whose socket is the TLS socket (greeting unread)."""
    p = Pop3(port, timeout=timeout, source=source)
    try:
        p.sock = ctx.wrap_socket(p.sock, server_hostname=server_hostname, session=session)
    except Exception:
        p.close()
        raise
    return p


def starttls(p, ctx, server_hostname="127.0.0.1", session=None):
    """STLS on a plain Pop3 whose greeting has been read."""
    r = p.cmd("STLS")
    assert r == "+OK Begin TLS negotiation", r
    assert p.buf == b"", "bytes after the STLS answer in the clear: %r" % p.buf
    p.sock = ctx.wrap_socket(p.sock, server_hostname=server_hostname, session=session)
    return p


def capa(p):
    """The CAPA lines of a session, as a list of str."""
    r = p.cmd("CAPA")
    assert r.startswith("+OK"), r
    return p.multiline().decode("latin-1").split("\r\n")[:-1]


def sasl_mechs(caps):
    for c in caps:
        if c.upper().startswith("SASL"):
            return c.split()[1:]
    return []


def client_hello_bytes(server_hostname="mail.example.org"):
    """The bytes of a real TLS ClientHello (no network involved)."""
    ctx = client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsTest(DaemonTest):
    """A daemon with certificates from a per-class test CA.

    listeners: {label: flags} of extra listeners (port in self.ports[label]);
    the harness's plain listener stays (the readiness probe uses it).
    plaintext_auth: None drops the harness's "plaintext_auth = yes" line (the
    default, no, applies), else the value to set.
    """

    workers = 2
    listeners = {"tls": "tls"}
    plaintext_auth = None
    tls_extra = ""
    autostart = True

    @classmethod
    def make_certs(cls, factory):
        return [factory.issue("mail-rsa", ["mail.example.org"])]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.factory = CertFactory()
        cls.addClassCleanup(cls.factory.cleanup)
        cls.certs = cls.make_certs(cls.factory)
        cls.ca = cls.factory.ca

    def tls_config(self, certs=None):
        certs = self.certs if certs is None else certs
        text = "".join("listen = 127.0.0.1:%d %s\n" % (self.ports[label], flags)
                       for label, flags in self.listeners.items())
        text += "".join("tls_cert = %s\ntls_key = %s\n" % (c.cert, c.key) for c in certs)
        return text + self.tls_extra

    def full_config(self, certs=None):
        text = self.d.config_text(self.tls_config(certs))
        assert "plaintext_auth = yes\n" in text
        if self.plaintext_auth is None:
            return text.replace("plaintext_auth = yes\n", "")
        return text.replace("plaintext_auth = yes\n", "plaintext_auth = %s\n"
                            % self.plaintext_auth)

    def setUp(self):
        self.ports = {label: free_port() for label in self.listeners}
        super().setUp()
        self.d.write_config(self.full_config())
        if self.autostart:
            self.d.start()

    def port(self, label="tls"):
        return self.ports[label]

    def session_line(self, client_port, timeout=10.0):
        """The daemon's session log line for a client port (waits for it)."""
        pat = re.compile(r"^.*session user=\S+ ip=\S+ port=%d reason=.*$" % client_port, re.M)
        found = []

        def have():
            m = pat.search(self.d.log())
            if m:
                found.append(m.group(0))
            return bool(m)
        from fastpop_harness import wait_until
        wait_until(have, timeout, what="session line for port %d:\n%s"
                   % (client_port, self.d.log()[-3000:]))
        return found[-1]


# --- helpers the TLS tests share ------------------------------------------------
TLS_USER = "alice"
TLS_PASSWORD = "alice-secret"
V12 = ssl.TLSVersion.TLSv1_2
V13 = ssl.TLSVersion.TLSv1_3


def plain_b64(user=TLS_USER, password=TLS_PASSWORD):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


def nothing_arrives(p, wait=1.0):
    """True if no byte arrives within wait seconds (and the socket stays open)."""
    p.sock.settimeout(wait)
    try:
        data = p.sock.recv(4096)
    except (socket.timeout, TimeoutError):
        return True
    finally:
        p.sock.settimeout(10)
    raise AssertionError("unexpected bytes (or EOF) from the server: %r" % data)


def login(p):
    r = p.cmd("USER " + TLS_USER)
    assert r.startswith("+OK"), r
    r = p.cmd("PASS " + TLS_PASSWORD)
    assert r.startswith("+OK Logged in"), r
    return r


def worker_of(line):
    m = re.search(r"\bworker\[(\d+)\]", line)
    assert m, line
    return int(m.group(1))


__all__ = ["V12", "V13", "plain_b64", "nothing_arrives", "login", "worker_of", "TlsTest", "CertFactory", "Cert", "der_info", "peer_info", "client_context", "legacy_context",
           "tls_connect", "starttls", "capa", "sasl_mechs", "client_hello_bytes", "free_port",
           "socket"]

"""A throwaway slapd for the LDAP tests: its own directory, port, mdb database
and LDIF, started in the foreground (slapd -d 0) and stopped by pid. Nothing
here touches a system slapd or /etc/ldap beyond reading the schema files.

With tls=True it also serves TLS: a test CA and a server certificate for
127.0.0.1 made here with the openssl CLI, StartTLS on the ldap:// port and
a second, ldaps:// port."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from fastpop_harness import AUTH_USER, IS_ROOT, free_port, wait_until

SUFFIX = "dc=example,dc=test"
READER_DN = "cn=reader,ou=system," + SUFFIX
READER_PW = "reader-secret"
# LDAP clients must not read the host's ldap.conf or ~/.ldaprc.
ENV = dict(os.environ, LDAPNOINIT="1")


def hash_ssha(password):
    return subprocess.check_output(["slappasswd", "-s", password, "-h", "{SSHA}"],
                                   env=ENV).decode().strip()


def hash_crypt(password):
    # A sha512-crypt string, as {CRYPT} carries it in many directories.
    return "{CRYPT}" + subprocess.check_output(
        ["openssl", "passwd", "-6", "-salt", "fastpopSalt", password]).decode().strip()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(directory, name):
    """A self-signed CA (EC P-256, valid two days): returns (cert path, key path)."""
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=fastpop test %s" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return cert, key


def make_server_cert(directory, ca_cert, ca_key):
    """A server certificate for 127.0.0.1 signed by the CA: returns (cert path, key path)."""
    cert, key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    csr, ext = os.path.join(directory, "server.csr"), os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        # libldap checks the URI's host against the subjectAltName, here an IP address.
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1", cwd=directory)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext, cwd=directory)
    return cert, key


def public_copy(src, directory, name):
    """A copy of a certificate in directory, readable by the auth helper's user
    (the slapd directory is private)."""
    path = os.path.join(directory, name)
    shutil.copyfile(src, path)
    os.chmod(path, 0o644)
    return path


def person(uid, password_value, ou="people", home=None, description=None):
    lines = ["dn: uid=%s,ou=%s,%s" % (uid, ou, SUFFIX),
             "objectClass: inetOrgPerson", "objectClass: posixAccount",
             "uid: %s" % uid, "cn: %s" % uid, "sn: %s" % uid,
             "uidNumber: 1000", "gidNumber: 1000",
             "homeDirectory: %s" % (home or "/home/" + uid)]
    if password_value:
        lines.append("userPassword: %s" % password_value)
    if description:
        lines.append("description: %s" % description)
    return "\n".join(lines) + "\n"


class Slapd:
    """modules: extra slapd modules to load (e.g. "ppolicy", "retcode");
    database_conf: directives for the database, e.g. its overlays;
    schemas: more of /etc/ldap/schema to include (e.g. "misc" for mailHost)."""

    def __init__(self, entries, port=None, tls=False, modules=(), database_conf="", schemas=()):
        self.dir = tempfile.mkdtemp(prefix="fastpop-slapd-")
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        self.proc = None
        self.conf = os.path.join(self.dir, "slapd.conf")
        os.makedirs(os.path.join(self.dir, "db"))
        tls_conf = ""
        if tls:
            self.ca_cert, ca_key = make_ca(self.dir, "ca")
            # Another CA that signed nothing here: trusting it alone must fail.
            self.other_ca_cert, _ = make_ca(self.dir, "other-ca")
            cert, key = make_server_cert(self.dir, self.ca_cert, ca_key)
            tls_conf = ("TLSCACertificateFile %s\nTLSCertificateFile %s\n"
                        "TLSCertificateKeyFile %s\n" % (self.ca_cert, cert, key))
        with open(self.conf, "w") as f:
            f.write(tls_conf)
            f.write("""modulepath /usr/lib/ldap
moduleload back_mdb
%(modules)sinclude /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
%(schemas)spidfile %(dir)s/slapd.pid
database mdb
maxsize 16777216
directory %(dir)s/db
suffix "%(suffix)s"
rootdn "cn=admin,%(suffix)s"
rootpw admin-secret
%(database_conf)saccess to attrs=userPassword by dn.exact="%(reader)s" read by anonymous auth by * none
access to * by * read
""" % {"dir": self.dir, "suffix": SUFFIX, "reader": READER_DN,
       "modules": "".join("moduleload %s\n" % m for m in modules),
       "database_conf": database_conf,
       "schemas": "".join("include /etc/ldap/schema/%s.schema\n" % s for s in schemas)})
        ldif = ["dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
                "o: example\n" % SUFFIX]
        for ou in ("people", "staff", "system", "errors"):
            ldif.append("dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n" %
                        (ou, SUFFIX, ou))
        ldif.append("dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
                    "cn: reader\nuserPassword: %s\n" % (READER_DN, hash_ssha(READER_PW)))
        ldif += entries
        path = os.path.join(self.dir, "data.ldif")
        with open(path, "w") as f:
            f.write("\n".join(ldif))
        subprocess.run(["slapadd", "-q", "-f", self.conf, "-l", path], env=ENV, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def uri(self):
        return "ldap://127.0.0.1:%d" % self.port

    @property
    def ldaps_uri(self):
        return "ldaps://127.0.0.1:%d" % self.tls_port

    def start(self):
        """Start slapd; a port another process took meanwhile is replaced (3 tries)."""
        for attempt in range(3):
            if self._start_once():
                return self
            self.port = free_port()
            if self.tls_port:
                self.tls_port = free_port()
        raise AssertionError("slapd could not bind a free port: %s" % self.read_log())

    def _start_once(self):
        self.log = open(os.path.join(self.dir, "slapd.log"), "ab")
        urls = "ldap://127.0.0.1:%d/" % self.port
        if self.tls_port:
            urls += " ldaps://127.0.0.1:%d/" % self.tls_port
        self.proc = subprocess.Popen(
            ["slapd", "-d", "0", "-f", self.conf, "-h", urls],
            env=ENV, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        lost = []

        def up():
            if self.proc.poll() is not None:
                lost.append(1)
                return True
            r = subprocess.run(["ldapwhoami", "-x", "-H", self.uri, "-D", READER_DN,
                                "-w", READER_PW], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            # The answer must come from this slapd: between free_port() and its bind,
            # another test's slapd (same users and passwords) may have taken the port.
            return r.returncode == 0 and self._listens_itself()
        wait_until(up, 15, what="slapd on port %d" % self.port)
        if lost:
            self.log.close()
            return False
        return True

    def _listens_itself(self):
        """Whether self.proc holds the listening socket of self.port."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == self.port:
                            inodes.add(fields[9])
            except OSError:
                continue
        fd_dir = "/proc/%d/fd" % self.proc.pid
        try:
            links = {os.readlink(os.path.join(fd_dir, n)) for n in os.listdir(fd_dir)}
        except OSError:
            return False
        return any("socket:[%s]" % i in links for i in inodes)

    def modify(self, ldif, manage_dsa_it=False):
        """Change the directory as its administrator (ldapmodify). manage_dsa_it
        sends the ManageDsaIT control, which also bypasses slapo-retcode."""
        args = ["ldapmodify", "-x", "-H", self.uri, "-D", "cn=admin," + SUFFIX,
                "-w", "admin-secret"] + (["-M"] if manage_dsa_it else [])
        r = subprocess.run(args, input=ldif.encode(), env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise AssertionError("ldapmodify: %s" % r.stderr.decode(errors="replace"))

    def read_log(self):
        with open(os.path.join(self.dir, "slapd.log"), "rb") as f:
            return f.read().decode(errors="replace")[-2000:]

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.log.close()

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def secret_file(directory, secret=READER_PW):
    """The service bind secret, readable by the auth helper alone."""
    path = os.path.join(directory, "ldap.secret")
    with open(path, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    if IS_ROOT:
        import pwd
        os.chown(path, pwd.getpwnam(AUTH_USER).pw_uid, -1)
    return path


def ldap_config(slapd_uri, secret, mode, extra=""):
    return ("passdb = passwd-file ldap\n"
            "ldap_uri = %s\n"
            "ldap_bind_dn = %s\n"
            "ldap_bind_secret_file = %s\n"
            "ldap_base = %s\n"
            "ldap_auth = %s\n"
            "ldap_timeout = 3s\n"
            "ldap_connect_timeout = 2s\n"
            "%s" % (slapd_uri, READER_DN, secret, SUFFIX, mode, extra))


def closed_port():
    """A loopback port nobody listens on (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def timed(fn):
    t = time.monotonic()
    r = fn()
    return r, time.monotonic() - t

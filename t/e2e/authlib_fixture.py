"""A real courier-authdaemond (Debian courier-authdaemon, authuserdb) for the
authlib tests, isolated from any Courier the host runs.

authdaemond's paths are compiled in: it reads /etc/courier/authdaemonrc and
/etc/courier/userdb.dat and listens on /run/courier/authdaemon/socket. So the
fixture runs it in a private mount namespace (unshare(1)) in which its own
directory's etc/ is bind-mounted on /etc/courier and its authdaemon/ on
/run/courier/authdaemon: the host's files and socket are never touched, the
mounts vanish with the process, and the socket appears, outside, at
DIR/authdaemon/socket, which fastpop is pointed at (authlib_socket).

The socket directory is made as a site should make it: owned by courier, group
fastpop's auth_user group, mode 0750, so only the helper (and root) can
connect (see README "Courier authentication")."""

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

AUTHDAEMOND = "/usr/lib/courier/courier-authlib/authdaemond"
USERDB_MODULE = "/usr/lib/courier-authlib/libauthuserdb.so.0"


def available():
    """'' if the real daemon can run here, else why not (for skipTest)."""
    if os.geteuid() != 0:
        return "needs root (mount namespace)"
    for f in (AUTHDAEMOND, USERDB_MODULE, "/usr/sbin/makeuserdb", "/usr/sbin/userdbpw"):
        if not os.path.exists(f):
            return "%s missing: courier-authdaemon and courier-authlib-userdb are needed " \
                   "(sh t/tools/setup-host.sh)" % f
    return ""


def userdbpw(password):
    """The password as userdbpw(8) hashes it (MD5 crypt, the tool's portable choice)."""
    out = subprocess.run(["/usr/sbin/userdbpw", "-md5"], input=password + "\n" + password + "\n",
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return out.strip().splitlines()[-1]


class Authdaemond:
    """users: name -> dict of userdb fields (uid, gid, home, mail, options, systempw)."""

    def __init__(self, users, helper_group, daemons=2):
        self.dir = tempfile.mkdtemp(prefix="fastpop-authlib-")
        os.chmod(self.dir, 0o755)
        self.etc = os.path.join(self.dir, "etc")
        self.sockdir = os.path.join(self.dir, "authdaemon")
        self.socket = os.path.join(self.sockdir, "socket")
        self.log_path = os.path.join(self.dir, "authdaemond.log")
        self.proc = None
        os.makedirs(self.etc)
        os.makedirs(self.sockdir)
        courier = pwd.getpwnam("courier")
        os.chown(self.sockdir, courier.pw_uid, grp.getgrnam(helper_group).gr_gid)
        os.chmod(self.sockdir, 0o750)
        with open(os.path.join(self.etc, "authdaemonrc"), "w") as f:
            f.write('authmodulelist="authuserdb"\ndaemons=%d\nauthdaemonvar=/run/courier/authdaemon\n'
                    'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n' % daemons)
        userdb = os.path.join(self.etc, "userdb")
        with open(os.open(userdb, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            for name, fields in users.items():
                f.write("%s\t%s\n" % (name, "|".join("%s=%s" % kv for kv in fields.items())))
        subprocess.run(["/usr/sbin/makeuserdb", "-f", userdb], check=True, timeout=60)

    def start(self):
        os.makedirs("/run/courier/authdaemon", exist_ok=True)   # the mount point
        # Inside the namespace: the two bind mounts, then authdaemond itself
        # (exec: self.proc.pid is the daemon), with authdaemonrc's settings in
        # its environment as the init script gives them.
        script = ('mount --bind "$0/etc" /etc/courier && '
                  'mount --bind "$0/authdaemon" /run/courier/authdaemon && '
                  'set -a && . "$0/etc/authdaemonrc" && exec %s' % AUTHDAEMOND)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                      "sh", "-c", script, self.dir],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("authdaemond did not start:\n" + self.log())
            time.sleep(0.1)
        return self

    def answers(self):
        """True once something accepts connections on the socket."""
        import socket
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """TERM by pid (authdaemond stops its own children), waited for."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

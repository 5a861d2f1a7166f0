"""The Debian package, tested the way Debian tests packages (issue 16):

lintian on the .deb; then, in a clean Debian 12 chroot (debian_chroot.py):
install with apt, check that nothing was started or enabled and that the users
exist; configure a user, a maildir and a free loopback port; start through the
init script (no systemd in a chroot); log in with a real client (poplib);
upgrade to a newer build whose shipped config differs, check that the edited
config was kept (the new one lands as .dpkg-dist) and that it serves again;
remove (the daemon stops, the conffiles stay); purge; and compare the chroot's
files with those before the install: nothing of the package may be left but
what policy allows (the system users, an administrator's own files).

Run as root: python3 t/pkg/test_deb.py [DIR with fastpop_*.deb, default build-deb]
"""
import glob
import os
import poplib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from debian_chroot import Chroot, ensure_tarball  # noqa: E402

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEB_DIR = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build-deb"))
PASSWORD = "alice-deb-secret"
MESSAGE = b"From: a@example.org\r\nSubject: package test\r\n\r\nHello from the chroot.\r\n"
# What may differ in the chroot after purge: apt's and dpkg's own records and
# caches, logs, the test's own files, and what policy lets a purge leave behind.
IGNORED_AFTER_PURGE = [
    "/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/apt/", "/var/cache/debconf/",
    "/var/log/", "/tmp/", "/var/tmp/", "/root/",
    # The test's maildirs and the administrator's password file.
    "/var/vmail", "/etc/fastpop/passwd", "/etc/fastpop",
    # adduser: the system users stay after purge (policy 9.2.2), and their backups.
    "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
    "/run/adduser",   # adduser's lock file (adduser is the one that made the users)
    # init-system-helpers' own bookkeeping directory, which it keeps.
    "/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked",
    "/var/lib/systemd",
]
TIMINGS = []


def log(text):
    print("test_deb: " + text, flush=True)


def timed(what, started):
    TIMINGS.append((what, time.monotonic() - started))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newest_deb():
    debs = sorted(glob.glob(os.path.join(DEB_DIR, "fastpop_*.deb")), key=os.path.getmtime)
    if not debs:
        raise AssertionError("no fastpop_*.deb in %s: run `make deb` first" % DEB_DIR)
    return debs[-1]


def newer_build(deb, workdir):
    """The same package with its version bumped and its shipped config changed, as the
    next release would be: dpkg must keep the administrator's edited file."""
    tree = os.path.join(workdir, "newer")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True, timeout=120)
    control = os.path.join(tree, "DEBIAN", "control")
    with open(control) as f:
        text = f.read()
    version = re.search(r"^Version: (\S+)$", text, re.M).group(1)
    newer = version + "+upgrade1"
    with open(control, "w") as f:
        f.write(text.replace("Version: " + version, "Version: " + newer))
    with open(os.path.join(tree, "etc/fastpop/fastpop.conf"), "a") as f:
        f.write("# A comment the next release added.\n")
    md5 = subprocess.run(["md5sum", "etc/fastpop/fastpop.conf"], cwd=tree, check=True,
                         capture_output=True, text=True).stdout.split()[0]
    conffiles = os.path.join(tree, "DEBIAN", "md5sums")
    with open(conffiles) as f:
        sums = f.read()
    with open(conffiles, "w") as f:
        f.write(re.sub(r"^\S+(  etc/fastpop/fastpop.conf)$", md5 + r"\1", sums, flags=re.M))
    out = os.path.join(workdir, "fastpop_%s_amd64.deb" % newer)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, out], check=True,
                   capture_output=True, timeout=120)
    return out, newer


def snapshot(root):
    """Every path in the chroot but the mounted /proc and /dev."""
    paths = set()
    for base, dirs, files in os.walk(root):
        rel = "/" + os.path.relpath(base, root)
        if rel in ("/proc", "/dev"):
            dirs[:] = []
            continue
        rel = "" if rel == "/." else rel
        for name in dirs + files:
            paths.add(rel + "/" + name)
    return paths


def allowed(path):
    return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/")
               for p in IGNORED_AFTER_PURGE)


class DebPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deb = newest_deb()
        started = time.monotonic()
        cls.tarball, made = ensure_tarball(log)
        if made:
            log("made the chroot tarball in %.0fs (cached for later runs)" % made)
        timed("chroot tarball (0 when cached)", started)

    def test_lintian_clean(self):
        started = time.monotonic()
        r = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info",
                            self.deb], capture_output=True, text=True, timeout=600)
        timed("lintian", started)
        log("lintian output:\n" + (r.stdout + r.stderr).strip())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex(r.stdout, r"(?m)^[EW]: ")

    def test_install_serve_upgrade_remove_purge(self):
        work = tempfile.mkdtemp(prefix="fastpop-deb-")
        self.addCleanup(shutil.rmtree, work, True)
        newer_deb, newer_version = newer_build(self.deb, work)
        started = time.monotonic()
        chroot = Chroot(self.tarball)
        self.addCleanup(chroot.destroy)
        timed("unpack the chroot", started)
        self.c = chroot
        for deb in (self.deb, newer_deb):
            shutil.copy(deb, chroot.path("/tmp"))
        self.emulate_runlevel_2()
        before = snapshot(chroot.root)

        started = time.monotonic()
        chroot.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                   "/tmp/" + os.path.basename(self.deb), timeout=600)
        timed("apt install", started)
        self.check_installed_but_not_started()

        port = free_port()
        self.configure(port)
        started = time.monotonic()
        chroot.run("update-rc.d", "fastpop", "enable")
        self.start()
        self.assert_login(port)
        timed("configure, start, log in", started)
        pid = self.master_pid()

        started = time.monotonic()
        # What an administrator's unattended upgrade does: keep changed conffiles.
        chroot.run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                   "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
                   "/tmp/" + os.path.basename(newer_deb), timeout=600)
        timed("apt upgrade", started)
        version = chroot.run("dpkg-query", "-W", "-f=${Version}", "fastpop").stdout
        self.assertEqual(version, newer_version)
        with open(chroot.path("/etc/fastpop/fastpop.conf")) as f:
            conf = f.read()
        self.assertIn("# edited by test_deb", conf)
        self.assertIn("listen = 127.0.0.1:%d" % port, conf)
        self.assertNotIn("A comment the next release added", conf)
        with open(chroot.path("/etc/fastpop/fastpop.conf.dpkg-dist")) as f:
            self.assertIn("A comment the next release added", f.read())
        # The maintainer scripts restarted the enabled service: a new master serves.
        self.assertNotEqual(self.master_pid(), pid, "the upgrade restarts the server")
        self.assert_login(port)

        started = time.monotonic()
        running = self.master_pid()
        chroot.run("apt-get", "remove", "-y", "-q", "fastpop", timeout=600)
        self.assertFalse(os.path.exists("/proc/%d" % running) and
                         self.master_pid() == running, "remove stops the server")
        self.assertFalse(os.path.exists(chroot.path("/usr/sbin/fastpopd")))
        # Removed, not purged: the configuration stays.
        self.assertTrue(os.path.exists(chroot.path("/etc/fastpop/fastpop.conf")))
        chroot.run("apt-get", "purge", "-y", "-q", "fastpop", timeout=600)
        timed("remove and purge", started)
        status = chroot.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "fastpop",
                            check=False).stdout
        self.assertIn(status.strip(), ("", "un", "pn"))
        # The libraries apt installed for it belong to other packages: not ours to judge.
        owned = self.files_of_installed_packages()
        left = sorted(p for p in snapshot(chroot.root) - before
                      if not allowed(p) and p not in owned)
        self.maxDiff = None
        self.assertEqual(left, [], "left in the chroot after purge")
        self.assertEqual(sorted(os.listdir(chroot.path("/etc/fastpop"))), ["passwd"])
        self.assertFalse(os.path.exists(chroot.path("/var/lib/fastpop")))
        # The users stay (they may own mail).
        chroot.run("getent", "passwd", "vmail", "fastpop")

    # --- steps -------------------------------------------------------------
    def files_of_installed_packages(self):
        paths = set()
        for name in glob.glob(self.c.path("/var/lib/dpkg/info/*.list")):
            with open(name) as f:
                paths.update(line.rstrip("\n") for line in f)
        return paths

    def emulate_runlevel_2(self):
        """With no init system, invoke-rc.d asks policy-rc.d(8) and, without one,
        blocks every action: the maintainer scripts' start, restart and stop would
        go untested. This one answers as a booted runlevel-2 sysvinit system does:
        start or restart only an enabled service (an S link in rc2.d), stop always."""
        path = self.c.path("/usr/sbin/policy-rc.d")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n"
                    "while [ \"${1#--}\" != \"$1\" ]; do shift; done\n"
                    "case \" $2 \" in\n"
                    "*start*) ls /etc/rc2.d/S[0-9][0-9]\"$1\" >/dev/null 2>&1 || exit 101 ;;\n"
                    "esac\n"
                    "exit 0\n")
        os.chmod(path, 0o755)

    def check_installed_but_not_started(self):
        c = self.c
        conffiles = c.run("dpkg-query", "-W", "-f=${Conffiles}", "fastpop").stdout
        for path in ("/etc/fastpop/fastpop.conf", "/etc/init.d/fastpop",
                     "/etc/fail2ban/filter.d/fastpop.conf"):
            self.assertIn(" %s " % path, conffiles)
        for path in ("/usr/sbin/fastpopd", "/usr/sbin/fastpop-auth", "/usr/sbin/fastpop-metrics",
                     "/usr/sbin/fastpop-router", "/usr/sbin/popctl",
                     "/lib/systemd/system/fastpop.service", "/usr/share/man/man8/fastpopd.8.gz",
                     "/usr/share/man/man5/fastpop.conf.5.gz", "/usr/share/man/man8/popctl.8.gz",
                     "/usr/share/doc/fastpop/fastpop.conf.sample",
                     "/usr/share/doc/fastpop/fail2ban/fastpop.conf.example"):
            self.assertTrue(os.path.exists(c.path(path)), path)
        with open(c.path("/lib/systemd/system/fastpop.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        self.assertIn("ExecStart=/usr/sbin/fastpopd -F", unit)
        self.assert_unit_parses(c.path("/lib/systemd/system/fastpop.service"))
        c.run("getent", "passwd", "vmail", "fastpop")
        # Neither started nor enabled until configured.
        self.assertIsNone(self.master_pid())
        self.assertEqual(glob.glob(c.path("/etc/rc[2345].d/S*fastpop")), [])
        self.assertNotEqual(glob.glob(c.path("/etc/rc2.d/K*fastpop")), [])
        self.assertFalse(os.path.exists(
            c.path("/etc/systemd/system/multi-user.target.wants/fastpop.service")))

    def assert_unit_parses(self, unit):
        """systemd's own parser on the unit (no systemd runs here: only its syntax is
        checked; what it cannot see from outside the chroot is left out)."""
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True,
                           text=True, timeout=60)
        complaints = [line for line in (r.stdout + r.stderr).splitlines()
                      if "is not executable" not in line and "sysinit.target" not in line
                      and line.strip()]
        self.assertEqual(complaints, [])

    def configure(self, port):
        c = self.c
        conf = c.path("/etc/fastpop/fastpop.conf")
        with open(conf) as f:
            text = f.read()
        # A setting may appear once (listen: once per address): comment out the shipped ones.
        text = re.sub(r"(?m)^(listen|workers|plaintext_auth|maildir)\s*=", r"#\1 =", text)
        text += ("# edited by test_deb\nlisten = 127.0.0.1:%d\nworkers = 1\n"
                 "plaintext_auth = yes\nmaildir = /var/vmail/%%n/Maildir\n" % port)
        with open(conf, "w") as f:
            f.write(text)
        with open(c.path("/etc/fastpop/passwd"), "w") as f:
            f.write("alice:{PLAIN}%s::::::\n" % PASSWORD)
        c.sh("chown root:fastpop /etc/fastpop/passwd; chmod 0640 /etc/fastpop/passwd\n"
             "mkdir -p /var/vmail/alice/Maildir/cur /var/vmail/alice/Maildir/new "
             "/var/vmail/alice/Maildir/tmp")
        with open(c.path("/var/vmail/alice/Maildir/new/1.M1P1.deb"), "wb") as f:
            f.write(MESSAGE)
        c.sh("chown -R vmail:vmail /var/vmail; fastpopd -t")

    def start(self):
        # The daemon keeps no descriptor of ours: its output goes to a file.
        r = self.c.sh("/etc/init.d/fastpop start >/tmp/start.log 2>&1 || "
                      "{ cat /tmp/start.log; exit 1; }", timeout=60)
        self.assertIsNotNone(self.master_pid(), r.stdout)

    def master_pid(self):
        """The master's pid from its pidfile, if one runs."""
        try:
            with open(self.c.path("/run/fastpop/fastpopd.pid")) as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        if pid and os.path.exists("/proc/%d" % pid) and \
                os.readlink("/proc/%d/root" % pid) == self.c.root:
            return pid
        return None

    def assert_login(self, port):
        deadline = time.monotonic() + 20
        while True:
            try:
                pop = poplib.POP3("127.0.0.1", port, timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            pop.user("alice")
            pop.pass_(PASSWORD)
            self.assertEqual(pop.stat(), (1, len(MESSAGE)))
            _, lines, _ = pop.retr(1)
            self.assertEqual(lines[-1], b"Hello from the chroot.")
        finally:
            pop.quit()


if __name__ == "__main__":
    import atexit
    atexit.register(lambda: log("times: " + ", ".join("%s %.1fs" % t for t in TIMINGS)))
    unittest.main(argv=sys.argv[:1], verbosity=2)

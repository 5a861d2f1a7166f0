"""A clean Debian 12 (bookworm) chroot for the package test, made with
debootstrap the way Debian's own tools (piuparts) test packages.

The first run bootstraps a minbase system and downloads (without installing)
the libraries fastpop's package depends on, and keeps that as a tarball in
/var/cache/fastpop-test; later runs unpack the tarball, which takes seconds.
Delete the tarball to start from the mirror again (it is also remade when
CACHE_VERSION changes). FASTPOP_DEB_MIRROR overrides the mirror.
"""
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time

CACHE_DIR = os.environ.get("FASTPOP_TEST_CACHE", "/var/cache/fastpop-test")
# Bump when the set below changes, so an old tarball is not reused.
CACHE_VERSION = 1
SUITE = "bookworm"
MIRROR = os.environ.get("FASTPOP_DEB_MIRROR", "http://deb.debian.org/debian")
# What the package's Depends resolve to on bookworm; downloaded into the
# tarball's apt cache so that installing the .deb needs no network. A new
# dependency still works: apt fetches it from the mirror.
PREFETCH = ["adduser", "libssl3", "libldap-2.5-0", "liblmdb0", "libcap2", "libcrypt1",
            "init-system-helpers", "lsb-base", "util-linux"]
# Bounds: a mirror that stalls fails the test instead of hanging it.
BOOTSTRAP_TIMEOUT = 1200
APT_TIMEOUT = 600


def tarball_path():
    return os.path.join(CACHE_DIR, "%s-minbase-v%d.tar.gz" % (SUITE, CACHE_VERSION))


def run(cmd, timeout, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s\n%s" % (" ".join(cmd), r.returncode,
                                                          r.stdout[-3000:], r.stderr[-3000:]))
    return r


def chroot_env():
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
            "LC_ALL": "C.UTF-8", "HOME": "/root"}


def ensure_tarball(log=print):
    """The cached minbase tarball; made first if missing. Returns (path, seconds spent)."""
    path = tarball_path()
    if os.path.exists(path):
        return path, 0.0
    os.makedirs(CACHE_DIR, exist_ok=True)
    started = time.monotonic()
    # `make test` starts one in the background while it compiles (`make chroot-prefetch`):
    # a second caller waits for it instead of bootstrapping again.
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):
            return path, time.monotonic() - started
        return _bootstrap(path, started, log)


def _bootstrap(path, started, log):
    root = tempfile.mkdtemp(prefix="fastpop-debootstrap-", dir=CACHE_DIR)
    try:
        log("debootstrap --variant=minbase %s from %s (first run only)" % (SUITE, MIRROR))
        run(["debootstrap", "--variant=minbase", SUITE, root, MIRROR], BOOTSTRAP_TIMEOUT)
        run(["chroot", root, "apt-get", "update", "-qq"], APT_TIMEOUT, env=chroot_env())
        run(["chroot", root, "apt-get", "install", "-y", "-qq", "--download-only",
             "--no-install-recommends"] + PREFETCH, APT_TIMEOUT, env=chroot_env())
        tmp = path + ".tmp"
        run(["tar", "-C", root, "-czf", tmp, "."], APT_TIMEOUT)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return path, time.monotonic() - started


class Chroot:
    """A fresh system unpacked from the tarball, with /proc and /dev mounted."""

    def __init__(self, tarball):
        self.root = tempfile.mkdtemp(prefix="fastpop-chroot-")
        self.mounts = []
        run(["tar", "-C", self.root, "-xzf", tarball], 300)
        # mkdtemp's 0700 (also what the tarball recorded for "."): inside, this is "/",
        # which the users the daemon drops to must cross.
        os.chmod(self.root, 0o755)
        # The daemon reads /proc (the helper checks its peers' /proc/PID/stat).
        self._mount(["mount", "-t", "proc", "proc"], "proc")
        self._mount(["mount", "--bind", "/dev"], "dev")
        shutil.copy("/etc/resolv.conf", os.path.join(self.root, "etc/resolv.conf"))

    def _mount(self, cmd, sub):
        target = os.path.join(self.root, sub)
        run(cmd + [target], 30)
        self.mounts.append(target)

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def run(self, *cmd, timeout=300, check=True):
        r = subprocess.run(["chroot", self.root] + list(cmd), capture_output=True, text=True,
                           timeout=timeout, env=chroot_env())
        if check and r.returncode != 0:
            raise AssertionError("in chroot: %s exited %d:\n%s\n%s" % (
                " ".join(cmd), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def sh(self, script, timeout=300, check=True):
        return self.run("sh", "-ec", script, timeout=timeout, check=check)

    def processes(self):
        """Pids of the processes running inside this chroot (their /proc/PID/root)."""
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                root = os.readlink("/proc/%s/root" % name)
            except OSError:
                continue
            if root == self.root or root.startswith(self.root + "/"):
                pids.append(int(name))
        return pids

    def destroy(self):
        # A test that failed half-way may have left the daemon running in here: each is
        # stopped by its pid, found by its root directory, before the tree goes.
        for _ in range(3):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
        # Only once nothing is mounted below it (never delete through a bind mount of /dev).
        with open("/proc/mounts") as f:
            if any(line.split()[1].startswith(self.root + "/") for line in f):
                raise AssertionError("%s still has mounts; not removing it" % self.root)
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    p, spent = ensure_tarball()
    print("%s (%.0fs to make)" % (p, spent))

#!/bin/sh
# Installs the Debian packages fastpop builds and tests with, and the two
# system users the demo and the tests run as. Idempotent: only what is
# missing is installed, so `make run` on a prepared host starts at once.
#   sh t/tools/setup-host.sh           what the build and `make test` need
#   sh t/tools/setup-host.sh --bench   also what only t/bench/compare.sh runs
set -eu

PACKAGES="build-essential cmake pkg-config clang libssl-dev libldap-dev liblmdb-dev
libcap-dev libcrypt-dev libcmocka-dev python3 curl fetchmail getmail6 slapd ldap-utils
procps psmisc openssl fail2ban strace dovecot-pop3d haproxy whois prometheus
courier-authdaemon courier-authlib-userdb nginx-light libnginx-mod-mail
dpkg-dev debhelper fakeroot lintian debootstrap systemd piuparts"
# The last line is for make deb and its test (t/pkg/test_deb.py): the package build,
# lintian, the Debian 12 chroot, systemd-analyze to parse the packaged unit, and
# piuparts for `make piuparts`.
# The benchmark's second incumbent, Courier: its tcpd (its authentication daemon and
# userdb are above: the authlib tests use them too). courier-pop itself is not
# installed: it conflicts with dovecot-pop3d (both provide pop3-server), so
# t/bench/courier.sh unpacks its .deb into a directory of its own instead.
BENCH_PACKAGES="courier-base"
[ "${1:-}" = --bench ] && PACKAGES="$PACKAGES $BENCH_PACKAGES"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-host: missing Debian packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "setup-host: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not start system daemons (slapd, dovecot, courier): the
    # tests start their own on loopback. policy-rc.d exit 101 forbids it.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    status=0
    # $missing is a list of package names: split on purpose.
    # shellcheck disable=SC2086
    # Another apt-get may hold the lock for a while: wait for it (bounded).
    apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
            $missing >/dev/null || status=$?
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ "$status" -eq 0 ] || exit "$status"
    # prometheus is here for promtool (the alert rules' checks), not its
    # server: the package enables one at boot; a test host gets it disabled.
    case " $missing " in
    *" prometheus "*)
        update-rc.d prometheus disable >/dev/null 2>&1 || true
        if command -v deb-systemd-helper >/dev/null; then
            deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
        fi
        ;;
    esac
    # courier-authdaemon likewise: t/e2e/authlib_fixture.py starts its own.
    case " $missing " in
    *" courier-authdaemon "*)
        update-rc.d courier-authdaemon disable >/dev/null 2>&1 || true
        if command -v deb-systemd-helper >/dev/null; then
            deb-systemd-helper disable courier-authdaemon.service >/dev/null 2>&1 || true
        fi
        ;;
    esac
    # nginx is here for its mail proxy in the multi-host test, which runs its
    # own nginx with its own prefix: the system one stays off at boot too.
    case " $missing " in
    *" nginx-light "*)
        update-rc.d nginx disable >/dev/null 2>&1 || true
        if command -v deb-systemd-helper >/dev/null; then
            deb-systemd-helper disable nginx.service >/dev/null 2>&1 || true
        fi
        ;;
    esac
fi

# System users: workers run as the mail user, the auth helper as its own user.
if [ "$(id -u)" -eq 0 ]; then
    getent group vmail >/dev/null || groupadd --system vmail
    getent passwd vmail >/dev/null ||
        useradd --system --gid vmail --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin vmail
    getent group fastpop >/dev/null || groupadd --system fastpop
    getent passwd fastpop >/dev/null ||
        useradd --system --gid fastpop --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin fastpop
fi
exit 0

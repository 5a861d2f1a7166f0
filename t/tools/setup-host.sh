#!/bin/sh
# Installs the Debian packages fastpop builds and tests with, and the two
# system users the demo and the tests run as. Idempotent: only what is
# missing is installed, so `make run` on a prepared host starts at once.
set -eu

PACKAGES="build-essential cmake pkg-config clang libssl-dev libldap-dev liblmdb-dev
libcap-dev libcrypt-dev libcmocka-dev python3 curl fetchmail getmail6 slapd ldap-utils
procps psmisc openssl"

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
    apt-get update -qq
    # slapd's postinst would start a system slapd; tests start their own.
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
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

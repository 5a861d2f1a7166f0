#!/bin/sh
# Courier's POP3 server (Debian courier-pop + courier-authdaemon, userdb) for the
# benchmark, isolated from any Courier the host runs:
#   sh t/bench/courier.sh DIR PORT MAXPROCS PASSWD MAILROOT
#   sh t/bench/courier.sh --version       the courier-pop version it runs
# DIR: a fresh directory of the run (configs, socket, logs); PORT on 127.0.0.1;
# MAXPROCS: connections (Courier forks a process per connection); PASSWD: the
# corpus passwd file (userNNNN:{PLAIN}pw:...); MAILROOT: MAILROOT/NAME/Maildir.
#
# Courier's paths are compiled in: authdaemond reads /etc/courier/authdaemonrc
# and /etc/courier/userdb.dat and listens on /run/courier/authdaemon/socket,
# where courierpop3login looks for it. Rather than write there, this script
# copies /etc/courier into DIR and runs both daemons in a private mount
# namespace (unshare(1)) in which DIR/etc is bind-mounted on /etc/courier and
# DIR/authdaemon on /run/courier/authdaemon: the host's files and socket are
# never touched, and the mounts vanish with the last process.
# It runs in the foreground, as the init scripts' commands do without
# courierlogger: couriertcpd (-address=127.0.0.1 PORT courierpop3login
# courierpop3d Maildir, the command of /usr/sbin/pop3d) and authdaemond, both
# children of this process. TERM to its pid stops both; it waits for them.
#
# The package courier-pop conflicts with dovecot-pop3d (both provide pop3-server):
# installing it removes Dovecot's POP3 server. So only courier-base (couriertcpd),
# courier-authdaemon and courier-authlib-userdb are installed (t/tools/setup-host.sh
# --bench), and courier-pop's .deb, of the same version as courier-base, is fetched
# with `apt-get download` and unpacked (dpkg-deb -x) into COURIER_POP_DIR, default
# /var/cache/fastpop-bench/courier-pop-VERSION, from where its two programs
# (courierpop3login, courierpop3d) and its pop3d settings are used.
set -eu

VERSION=$(dpkg-query -W -f='${Version}' courier-base 2>/dev/null || true)
POP=${COURIER_POP_DIR:-/var/cache/fastpop-bench/courier-pop-$VERSION}
LOGIN=$POP/usr/lib/courier/courier/courierpop3login
if [ "${1:-}" = --version ]; then
    echo "courier-pop $VERSION (unpacked)"
    exit 0
fi

if [ "${1:-}" = --inside ]; then
    shift
    CD=$1 BENCH_PORT=$2 MAXPROCS=$3
    mount --bind "$CD/etc" /etc/courier
    mount --bind "$CD/authdaemon" /run/courier/authdaemon
    # authdaemond takes DEBUG_LOGIN and the like from its environment (the init
    # script exports authdaemonrc); the module list it reads from the file.
    (set -a; . "$CD/etc/authdaemonrc"; exec /usr/lib/courier/courier-authlib/authdaemond) \
        </dev/null >>"$CD/authdaemond.log" 2>&1 &
    AUTH=$!
    i=0
    while ! [ -S "$CD/authdaemon/socket" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    # The package's pop3d settings, exported as /usr/sbin/pop3d does (with the
    # variables it defines first; the file may use any of them).
    set +u -a
    prefix=/usr exec_prefix=/usr sbindir=/usr/sbin bindir=/usr/bin libexecdir=/usr/lib/courier
    . "$POP/etc/courier/pop3d"
    set -u +a
    /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs="$MAXPROCS" -maxperip="$MAXPROCS" \
        -maxperc="$MAXPROCS" -nodnslookup -noidentlookup -stderr="$CD/pop3d.log" "$BENCH_PORT" \
        "$LOGIN" "$POP/usr/lib/courier/courier/courierpop3d" Maildir </dev/null >>"$CD/couriertcpd.log" 2>&1 &
    TCPD=$!
    trap 'kill -TERM $TCPD $AUTH 2>/dev/null; wait; exit 0' TERM INT
    wait
    exit 0
fi

CD=$1 PORT=$2 MAXPROCS=$3 PASSWD=$4 MAILROOT=$5
for f in /usr/sbin/couriertcpd /usr/lib/courier/courier-authlib/authdaemond \
         /usr/lib/courier-authlib/libauthuserdb.so.0; do
    [ -e "$f" ] || { echo "courier.sh: $f missing: courier-base, courier-authdaemon and" \
                          "courier-authlib-userdb are needed (sh t/tools/setup-host.sh --bench)" >&2
                     exit 1; }
done
if ! [ -x "$LOGIN" ]; then
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || true   # apt-get download runs as _apt where it can
    (cd "$tmp" && apt-get download -q "courier-pop=$VERSION" >/dev/null) &&
        dpkg-deb -x "$tmp"/courier-pop_*.deb "$tmp/root" &&
        mkdir -p "$(dirname "$POP")" && rm -rf "$POP" && mv "$tmp/root" "$POP" ||
        { echo "courier.sh: cannot fetch and unpack courier-pop $VERSION" >&2; rm -rf "$tmp"; exit 1; }
    rm -rf "$tmp"
fi
mkdir -p "$CD/etc" "$CD/authdaemon" /run/courier/authdaemon
cp -a /etc/courier/. "$CD/etc/"
chown courier:courier "$CD/authdaemon"
chmod 750 "$CD/authdaemon"
# Only the userdb module, no login debugging: what a userdb installation runs.
sed -i -e 's/^authmodulelist=.*/authmodulelist="authuserdb"/' -e 's/^DEBUG_LOGIN=.*/DEBUG_LOGIN=0/' \
    "$CD/etc/authdaemonrc"
# The userdb: every corpus user as vmail, mail in MAILROOT/NAME/Maildir. Courier's
# password schemes have no {PLAIN}; {SHA256} (one hash per login) is the nearest.
VU=$(id -u vmail) VG=$(id -g vmail)
(umask 077
 python3 -c '
import base64, hashlib, sys
passwd, uid, gid, root = sys.argv[1:5]
memo = {}
for line in open(passwd):
    name, pw = line.split(":")[:2]
    pw = pw[len("{PLAIN}"):] if pw.startswith("{PLAIN}") else pw
    if pw not in memo:
        memo[pw] = base64.b64encode(hashlib.sha256(pw.encode()).digest()).decode()
    print("%s\tuid=%s|gid=%s|home=%s/%s|mail=%s/%s/Maildir|systempw={SHA256}%s"
          % (name, uid, gid, root, name, root, name, memo[pw]))
' "$PASSWD" "$VU" "$VG" "$MAILROOT" > "$CD/etc/userdb")
/usr/sbin/makeuserdb -f "$CD/etc/userdb"
exec unshare --mount --propagation private sh "$0" --inside "$CD" "$PORT" "$MAXPROCS"

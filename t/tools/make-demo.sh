#!/bin/sh
# Writes the demo set-up under BUILD/demo: a config listening on
# 127.0.0.1:1110, a passwd file with the user "demo" (password "demo") and
# a maildir with two messages. Run as root it uses the system users vmail
# (mail) and fastpop (auth helper) that setup-host.sh creates.
set -eu
BUILD=${1:-build}
mkdir -p "$BUILD"
DEMO=$(cd "$BUILD" && pwd)/demo
mkdir -p "$DEMO/run" "$DEMO/state" "$DEMO/mail/demo/Maildir/new" \
         "$DEMO/mail/demo/Maildir/cur" "$DEMO/mail/demo/Maildir/tmp"
# fastpopd refuses run_dir and state_dir that group or others may write.
chmod go-w "$DEMO/run" "$DEMO/state"

if [ "$(id -u)" -eq 0 ]; then
    MAILUSER=vmail MAILGROUP=vmail AUTHUSER=fastpop
else
    MAILUSER=$(id -un) MAILGROUP=$(id -gn) AUTHUSER=$(id -un)
fi

# A demo CA and a server certificate for 127.0.0.1 and localhost, so the
# demo speaks TLS like a real site (passwords never cross in the clear).
if [ ! -s "$DEMO/tls/server.pem" ]; then
    mkdir -p "$DEMO/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=fastpop demo CA" \
        -keyout "$DEMO/tls/ca.key" -out "$DEMO/tls/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$DEMO/tls/server.key" -out "$DEMO/tls/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$DEMO/tls/ext"
    openssl x509 -req -in "$DEMO/tls/server.csr" -CA "$DEMO/tls/ca.pem" \
        -CAkey "$DEMO/tls/ca.key" -CAcreateserial -days 825 -extfile "$DEMO/tls/ext" \
        -out "$DEMO/tls/server.pem" 2>/dev/null
    chmod 600 "$DEMO/tls/server.key" "$DEMO/tls/ca.key"
fi

cat > "$DEMO/fastpop.conf" <<CONF
# fastpop demo configuration (written by t/tools/make-demo.sh)
# POP3 with STLS on 1110, implicit TLS (pop3s) on 1995.
listen = 127.0.0.1:${FASTPOP_DEMO_PORT:-1110}
listen = 127.0.0.1:${FASTPOP_DEMO_TLS_PORT:-1995} tls
metrics_listen = 127.0.0.1:${FASTPOP_DEMO_METRICS_PORT:-9110}
tls_cert = $DEMO/tls/server.pem
tls_key = $DEMO/tls/server.key
workers = 2
user = $MAILUSER
group = $MAILGROUP
auth_user = $AUTHUSER
run_dir = $DEMO/run
state_dir = $DEMO/state
passwd_file = $DEMO/passwd
maildir = $DEMO/mail/%n/Maildir
log = stderr
log_level = info
CONF

# The demo password is "demo", stored as SHA512-CRYPT like a real site would.
HASH=$(openssl passwd -6 -salt fastpopdemo demo)
echo "demo:{SHA512-CRYPT}$HASH::::::" > "$DEMO/passwd"

MD="$DEMO/mail/demo/Maildir"
if [ -z "$(ls -A "$MD/new")$(ls -A "$MD/cur")" ]; then
    NOW=$(date +%s)
    printf 'From: Demo Sender <sender@example.org>\nTo: demo@example.org\nSubject: Welcome to fastpop\nDate: %s\n\nHello!\n\nThis message was delivered to the fastpop demo maildir.\n.A line starting with a dot is dot-stuffed on the wire.\n' \
        "$(date -R)" > "$MD/new/$NOW.M1P1.demo"
    printf 'From: Demo Sender <sender@example.org>\nTo: demo@example.org\nSubject: A second message\nDate: %s\n\nSecond message body.\n' \
        "$(date -R)" > "$MD/new/$((NOW + 1)).M2P1.demo"
fi

if [ "$(id -u)" -eq 0 ]; then
    chown -R "$MAILUSER:$MAILGROUP" "$DEMO/mail"
    chown "root:$AUTHUSER" "$DEMO/passwd"
    chmod 0640 "$DEMO/passwd"
    # Workers and the helper run unprivileged: they must reach these paths.
    if ! runuser -u "$MAILUSER" -- test -w "$MD/new"; then
        echo "make-demo: user $MAILUSER cannot reach $MD (a parent directory is not" >&2
        echo "make-demo: searchable by others); use a checkout outside such a directory" >&2
        exit 1
    fi
fi
echo "make-demo: demo set up in $DEMO"

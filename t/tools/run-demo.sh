#!/bin/sh
# Starts fastpopd in the foreground on the demo set-up, after saying how to
# fetch the demo mail with curl.
set -eu
BUILD=${1:-build}
DEMO=$(cd "$BUILD" && pwd)/demo
PORT=${FASTPOP_DEMO_PORT:-1110}
TLS_PORT=${FASTPOP_DEMO_TLS_PORT:-1995}
METRICS_PORT=${FASTPOP_DEMO_METRICS_PORT:-9110}
cat <<MSG

fastpop demo: POP3 with STLS on 127.0.0.1:$PORT and POP3S on 127.0.0.1:$TLS_PORT,
user "demo", password "demo", certificates signed by $DEMO/tls/ca.pem.
In another terminal:
  curl --ssl-reqd --cacert $DEMO/tls/ca.pem pop3://demo:demo@127.0.0.1:$PORT/    # list the mailbox
  curl --cacert $DEMO/tls/ca.pem pop3s://demo:demo@127.0.0.1:$TLS_PORT/1             # fetch message 1
  curl --ssl-reqd --cacert $DEMO/tls/ca.pem -X UIDL pop3://demo:demo@127.0.0.1:$PORT/
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep '^fastpop_logins_total'       # Prometheus
  $BUILD/bin/popctl -c $DEMO/fastpop.conf stats                                       # the same, for people
Passwords are refused without TLS (plaintext_auth = no, the default).
Stop with Ctrl-C.

MSG
exec "$BUILD/bin/fastpopd" -F -c "$DEMO/fastpop.conf"

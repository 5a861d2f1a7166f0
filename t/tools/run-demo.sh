#!/bin/sh
# Starts fastpopd in the foreground on the demo set-up, after saying how to
# fetch the demo mail with curl.
set -eu
BUILD=${1:-build}
DEMO=$(cd "$BUILD" && pwd)/demo
cat <<MSG

fastpop demo: POP3 on 127.0.0.1:1110, user "demo", password "demo".
In another terminal:
  curl pop3://demo:demo@127.0.0.1:1110/          # list the mailbox
  curl pop3://demo:demo@127.0.0.1:1110/1         # fetch message 1
  curl -X UIDL pop3://demo:demo@127.0.0.1:1110/  # unique ids
Stop with Ctrl-C.

MSG
exec "$BUILD/bin/fastpopd" -F -c "$DEMO/fastpop.conf"

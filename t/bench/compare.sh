#!/bin/sh
# fastpop beside Dovecot, Courier and a null server, on one corpus, in one command.
# See t/bench/README.md. Run as root from anywhere:
#   sh t/bench/compare.sh [--rounds N] [--duration S] [--scenarios login,download,...]
#                         [--quick] [--users N] [--concurrency C]
#                         [--idle-connections N] [--dovecot-idle-connections N]
#                         [--tls-idle-connections N] [--dovecot-tls-idle-connections N]
#                         [--bigbox N] [--no-dovecot] [--keep] [--out FILE]
#                         [--no-courier] [--courier-idle-connections N]
#                         [--delivery-users N] [--delivery-duration S] [--delivery-budget S]
#                         [--drain-rounds N]
# Writes t/bench/RESULTS.md (or --out). Everything it starts it stops by pid;
# everything listens on 127.0.0.1 only. Work files: a fresh /tmp/fastpop-bench.*.
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$SRC/t/bench
BUILD=${BUILD:-$SRC/build}
NCPU=$(nproc)
ROUNDS=3
DURATION=15
SCENARIOS=login,download,drain,idle,bigbox,delivery,tls
USERS=400
DRAIN_USERS=400
CONC=50
IDLE=50000
DOVECOT_IDLE=5000
TLS_IDLE=10000
DOVECOT_TLS_IDLE=1000
HOLD=10
BIGBOX=100000
DOVECOT=yes
COURIER=yes
COURIER_IDLE=""
DELIVERY_USERS=80
DELIVERY_DURATION=15
DELIVERY_BUDGET=300
DELIVERY_TRIALS=8
DRAIN_ROUNDS=1
KEEP=no
OUT=$BENCH/RESULTS.md
ARGS="$*"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --users) USERS=$2; shift ;;
    --concurrency) CONC=$2; shift ;;
    --idle-connections) IDLE=$2; shift ;;
    --dovecot-idle-connections) DOVECOT_IDLE=$2; shift ;;
    --tls-idle-connections) TLS_IDLE=$2; shift ;;
    --dovecot-tls-idle-connections) DOVECOT_TLS_IDLE=$2; shift ;;
    --bigbox) BIGBOX=$2; shift ;;
    --no-dovecot) DOVECOT=no ;;
    --no-courier) COURIER=no ;;
    --courier-idle-connections) COURIER_IDLE=$2; shift ;;
    --delivery-users) DELIVERY_USERS=$2; shift ;;
    --delivery-duration) DELIVERY_DURATION=$2; shift ;;
    --delivery-budget) DELIVERY_BUDGET=$2; shift ;;
    --drain-rounds) DRAIN_ROUNDS=$2; shift ;;
    --keep) KEEP=yes ;;
    --out) OUT=$2; shift ;;
    --quick) ROUNDS=1 DURATION=3 USERS=100 DRAIN_USERS=200 IDLE=2000 DOVECOT_IDLE=300 HOLD=3
             TLS_IDLE=500 DOVECOT_TLS_IDLE=100 BIGBOX=10000 DELIVERY_USERS=20 DELIVERY_DURATION=4
             DELIVERY_BUDGET=60 DELIVERY_TRIALS=4 ;;
    *) echo "compare.sh: unknown option $1 (see t/bench/README.md)" >&2; exit 2 ;;
    esac
    shift
done

# Courier, like Dovecot, keeps a process per connection: the same idle count by default.
[ -n "$COURIER_IDLE" ] || COURIER_IDLE=$DOVECOT_IDLE

say() { echo "compare.sh: $*" >&2; }
has() { case ",$SCENARIOS," in *",$1,"*) return 0 ;; esac; return 1; }

[ "$(id -u)" -eq 0 ] || { say "run as root (the servers drop to vmail/fastpop)"; exit 1; }
id vmail >/dev/null 2>&1 && id fastpop >/dev/null 2>&1 || sh "$SRC/t/tools/setup-host.sh"

# --- build -----------------------------------------------------------------
say "building into $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$NCPU" --target fastpopd fastpop-auth >/dev/null
WORK=$(mktemp -d /tmp/fastpop-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/bin"
if cmake --build "$BUILD" -j"$NCPU" --target popload >/dev/null 2>&1 && [ -x "$BUILD/bin/popload" ]; then
    POPLOAD=$BUILD/bin/popload
else
    # t/bench is not (yet) an add_subdirectory of the top-level CMakeLists.txt.
    POPLOAD=$WORK/bin/popload
    ${CC:-cc} -std=c11 -O2 -g -D_GNU_SOURCE -Wall -Wextra -Werror -o "$POPLOAD" \
        "$BENCH/popload.c" "$BENCH/client.c" "$BENCH/nullserver.c" "$BENCH/procstat.c" \
        "$BENCH/hist.c" "$BENCH/tlsclient.c" -lssl -lcrypto
fi

# --- everything we start, stopped by pid at exit ----------------------------
PIDS=""
cleanup() {
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "$KEEP" = no ]; then rm -rf "$WORK"; else say "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 "$BENCH/report.py" freeport; }
wait_greeting() {  # port seconds
    python3 "$BENCH/report.py" wait "$1" "$2" || { say "nothing answers on port $1"; exit 1; }
}

# --- corpus ------------------------------------------------------------------
MAXIDLE=$IDLE
[ "$DOVECOT_IDLE" -gt "$MAXIDLE" ] && MAXIDLE=$DOVECOT_IDLE
[ "$TLS_IDLE" -gt "$MAXIDLE" ] && MAXIDLE=$TLS_IDLE
[ "$COURIER_IDLE" -gt "$MAXIDLE" ] && MAXIDLE=$COURIER_IDLE
has idle || MAXIDLE=0
has drain || DRAIN_USERS=0
has bigbox || BIGBOX=0
# delivery: per server, DELIVERY_TRIALS trials of fresh users, then the small-message
# drain's users (delivery.py --drain).
DRAIN_SMALL_USERS=200
has delivery || { DELIVERY_USERS=0; DRAIN_SMALL_USERS=0; }
PER_SERVER_DELIVERY=$((DELIVERY_USERS * DELIVERY_TRIALS + DRAIN_SMALL_USERS))
ALL_DELIVERY=$((PER_SERVER_DELIVERY * 3))
[ "$DRAIN_USERS" -gt 0 ] && [ "$DRAIN_USERS" -lt "$CONC" ] && DRAIN_USERS=$CONC
say "corpus: $USERS users, $DRAIN_USERS drain users, $MAXIDLE idle users, bigbox $BIGBOX"
python3 "$BENCH/mkcorpus.py" --dir "$WORK" --seed 1 --users "$USERS" --drain-users "$DRAIN_USERS" \
    --idle-users "$MAXIDLE" --delivery-users "$ALL_DELIVERY" --bigbox "$BIGBOX" >&2
chown -R vmail:vmail "$WORK/mail"
cp "$WORK/passwd" "$WORK/passwd.dovecot"
chown root:fastpop "$WORK/passwd"; chmod 640 "$WORK/passwd"
chown root:dovecot "$WORK/passwd.dovecot"; chmod 640 "$WORK/passwd.dovecot"
du -sh "$WORK/mail" >&2

# --- TLS certificates ------------------------------------------------------------
# Two throwaway self-signed certificates for the same name, ECDSA P-256 and RSA-2048,
# made here with the openssl CLI. Both servers hold both (fastpop two tls_cert pairs,
# Dovecot ssl_cert and ssl_alt_cert); the client picks one by the signature
# algorithms it offers (popload --tls-cert ecdsa|rsa), as real clients do.
TLSD=$WORK/tls
mkdir -p "$TLSD"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=fastpop-bench -addext subjectAltName=DNS:fastpop-bench,IP:127.0.0.1 \
    -keyout "$TLSD/ecdsa.key" -out "$TLSD/ecdsa.pem" >/dev/null 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj /CN=fastpop-bench -addext subjectAltName=DNS:fastpop-bench,IP:127.0.0.1 \
    -keyout "$TLSD/rsa.key" -out "$TLSD/rsa.pem" >/dev/null 2>&1
chmod 755 "$TLSD"; chmod 600 "$TLSD"/*.key; chmod 644 "$TLSD"/*.pem

# --- fastpop -------------------------------------------------------------------
FP_PORT=$(port)
FP_TLS_PORT=$(port)
mkdir -p "$WORK/fastpop"
cat > "$WORK/fastpop/fastpop.conf" <<EOF
listen = 127.0.0.1:$FP_PORT
listen = 127.0.0.1:$FP_TLS_PORT tls
tls_cert = $TLSD/ecdsa.pem
tls_key = $TLSD/ecdsa.key
tls_cert = $TLSD/rsa.pem
tls_key = $TLSD/rsa.key
# Passwords in the clear on the plain listener: the benchmark's scenarios speak
# plain POP3 on loopback (the default, plaintext_auth = no, refuses USER/PASS).
plaintext_auth = yes
workers = $NCPU
user = vmail
group = vmail
auth_user = fastpop
run_dir = $WORK/fastpop/run
state_dir = $WORK/fastpop/state
passwd_file = $WORK/passwd
maildir = $WORK/mail/%n/Maildir
log = stderr
log_level = info
max_connections = 60000
max_connections_per_ip = 60000
# Every benchmark client comes from 127.0.0.1: no per-address limit on helper work.
auth_rate_limit = 0
shutdown_timeout = 5s
EOF
FP_PID=""
start_fastpop() {
    rm -rf "$WORK/fastpop/state"   # no index: the next login is cold
    "$BUILD/bin/fastpopd" -F -c "$WORK/fastpop/fastpop.conf" </dev/null >>"$WORK/fastpop/fastpop.log" 2>&1 &
    FP_PID=$!
    PIDS="$PIDS $FP_PID"
    wait_greeting "$FP_PORT" 20
}
stop_fastpop() {
    kill -TERM "$FP_PID"
    wait "$FP_PID" 2>/dev/null || true
}
start_fastpop

# --- Dovecot -------------------------------------------------------------------
DC_PORT=""
DC_TLS_PORT=""
DC_PID=""
# Where Dovecot's pop3 and pop3-login are: the package's, or, when dovecot-pop3d is
# not installed (courier-pop conflicts with it: both provide pop3-server), the two
# binaries taken from its .deb in apt's cache, for the installed dovecot-core.
dovecot_pop3_dir() {
    if [ -e /usr/lib/dovecot/pop3 ] && [ -e /usr/lib/dovecot/pop3-login ]; then
        echo /usr/lib/dovecot; return 0
    fi
    v=$(dpkg-query -W -f '${Version}' dovecot-core 2>/dev/null) || return 0
    deb=$(ls /var/cache/apt/archives/dovecot-pop3d_*.deb 2>/dev/null | grep -F "${v#*:}_" | head -1)
    [ -n "$deb" ] || return 0
    mkdir -p "$WORK/dovecot-pop3d"
    dpkg-deb -x "$deb" "$WORK/dovecot-pop3d" && [ -e "$WORK/dovecot-pop3d/usr/lib/dovecot/pop3" ] &&
        echo "$WORK/dovecot-pop3d/usr/lib/dovecot"
    return 0
}
# TLS as an operator sets it up: both certificates (ssl_alt_cert: Dovecot picks by the
# client's signature algorithms, as fastpop does), a pop3s listener beside pop3 (STLS
# on that one), and fastpop's TLS 1.3 suite order, the server's order winning, so both
# encrypt with AES-128-GCM (Dovecot's default follows the client: AES-256-GCM with
# OpenSSL's). The rest are Dovecot's defaults (TLS >= 1.2, OpenSSL's groups: X25519 first).
dovecot_tls_config() {
    cat <<EOF
ssl = yes
ssl_prefer_server_ciphers = yes
ssl_cipher_suites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
ssl_cert = <$TLSD/ecdsa.pem
ssl_key = <$TLSD/ecdsa.key
ssl_alt_cert = <$TLSD/rsa.pem
ssl_alt_key = <$TLSD/rsa.key
service pop3-login {
  inet_listener pop3s {
    address = 127.0.0.1
    port = $DC_TLS_PORT
    ssl = yes
  }
}
EOF
}
if [ "$DOVECOT" = yes ]; then
    DC_LIBEXEC=$(dovecot_pop3_dir)
    if ! [ -x /usr/sbin/dovecot ] || [ -z "$DC_LIBEXEC" ]; then
        say "installing dovecot-pop3d"
        apt-get install -y dovecot-pop3d >"$WORK/apt.log" 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y dovecot-pop3d >"$WORK/apt.log" 2>&1; }
        DC_LIBEXEC=/usr/lib/dovecot
    fi
    DC_PORT=$(port)
    DC_TLS_PORT=$(port)
    DCD=$WORK/dovecot
    mkdir -p "$DCD"
    PLIMIT=$((DOVECOT_IDLE + 1000))
    cat > "$DCD/dovecot.conf" <<EOF
# Dovecot tuned for a fair comparison: high-performance login processes
# (service_count = 0: each one serves many logins), pop3 processes reused
# (all users share one uid) and kept ready, the auth cache on,
# process and client limits above the load, maildir indexes outside the
# maildirs (INDEX=, CONTROL=) so both servers read identical maildirs, and
# UIDLs from the file names (%f), as fastpop derives them.
base_dir = $DCD/run
state_dir = $DCD/state
instance_name = fastpop-bench
protocols = pop3
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = $DCD/dovecot.log
mail_location = maildir:$WORK/mail/%n/Maildir:INDEX=$DCD/index/%n:CONTROL=$DCD/control/%n
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 1
pop3_uidl_format = %f
auth_cache_size = 64M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 1 hour
default_process_limit = $PLIMIT
default_client_limit = 15000
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = scheme=PLAIN $WORK/passwd.dovecot
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=$WORK/mail/%n
}
service pop3-login {
  executable = $DC_LIBEXEC/pop3-login
  inet_listener pop3 {
    address = 127.0.0.1
    port = $DC_PORT
  }
  service_count = 0
  process_min_avail = $NCPU
  vsz_limit = 1G
}
service pop3 {
  executable = $DC_LIBEXEC/pop3
  process_limit = $PLIMIT
  client_limit = 1
  # Every user is vmail here, the case where Dovecot's mail processes may be
  # reused: 4x fewer CPU per login than a fresh process per session.
  service_count = 1000
  process_min_avail = $CONC
}
service auth {
  client_limit = 19000
}
service anvil {
  client_limit = 19000
}
EOF
    dovecot_tls_config >> "$DCD/dovecot.conf"
    mkdir -p "$DCD/index" "$DCD/control"
    chown vmail:vmail "$DCD/index" "$DCD/control"
    /usr/sbin/dovecot -F -c "$DCD/dovecot.conf" </dev/null >>"$DCD/stderr.log" 2>&1 &
    DC_PID=$!
    PIDS="$PIDS $DC_PID"
    wait_greeting "$DC_PORT" 20
fi

# --- Courier ---------------------------------------------------------------------
# courier-pop with courier-authdaemon and a userdb made from the same passwd file,
# isolated in a mount namespace by t/bench/courier.sh (the host's /etc/courier and
# /run/courier stay as they are). Installed on first use like Dovecot, by the
# project's set-up with policy-rc.d, so no system Courier daemon is started.
CR_PORT=""
CR_PID=""
start_courier() {
    if ! [ -x /usr/sbin/couriertcpd ] || ! [ -e /usr/lib/courier-authlib/libauthuserdb.so.0 ]; then
        say "installing courier-base, courier-authdaemon, courier-authlib-userdb"
        sh "$SRC/t/tools/setup-host.sh" --bench >"$WORK/apt-courier.log" 2>&1 ||
            { say "cannot install Courier (see $WORK/apt-courier.log)"; exit 1; }
    fi
    CR_PORT=$(port)
    climit=$COURIER_IDLE
    [ "$CONC" -gt "$climit" ] && climit=$CONC
    sh "$BENCH/courier.sh" "$WORK/courier" "$CR_PORT" $((climit + 1000)) "$WORK/passwd" \
        "$WORK/mail" </dev/null >>"$WORK/courier.log" 2>&1 &
    CR_PID=$!
    PIDS="$PIDS $CR_PID"
    wait_greeting "$CR_PORT" 30
}
[ "$COURIER" = yes ] && start_courier

# --- null server ---------------------------------------------------------------
NL_PORT=$(port)
"$POPLOAD" --null-server "$NL_PORT" --procs "$NCPU" 2>>"$WORK/null.log" &
NL_PID=$!
PIDS="$PIDS $NL_PID"
wait_greeting "$NL_PORT" 10

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
server_port() { case $1 in fastpop) echo "$FP_PORT" ;; dovecot) echo "$DC_PORT" ;;
                courier) echo "$CR_PORT" ;; null) echo "$NL_PORT" ;; esac; }
server_pid() { case $1 in fastpop) echo "$FP_PID" ;; dovecot) echo "$DC_PID" ;;
               courier) echo "$CR_PID" ;; null) echo "$NL_PID" ;; esac; }

# run SERVER SCENARIO ROUND LABEL popload-args...: one popload run, its JSON line kept.
run() {
    srv=$1 sc=$2 round=$3 label=$4
    shift 4
    say "round $round: $label against $srv"
    line=$("$POPLOAD" --port "$(server_port "$srv")" --server-pid "$(server_pid "$srv")" \
           --quiet --password benchpw "$@" 2>>"$WORK/popload.err" | tail -1) || true
    [ -n "$line" ] || line='{"errors":-1}'
    echo "{\"server\":\"$srv\",\"scenario\":\"$sc\",\"label\":\"$label\",\"round\":$round,\"run\":$line}" >>"$RESULTS"
    echo "$line" | cut -c1-200 >&2
}

SERVERS="fastpop"
[ "$DOVECOT" = yes ] && SERVERS="$SERVERS dovecot"
[ "$COURIER" = yes ] && SERVERS="$SERVERS courier"
SERVERS_NULL="$SERVERS null"
# Each round starts with a different server, so drift does not favour one.
rotate() {  # round list...
    r=$1; shift
    n=$#; k=$(( (r - 1) % n )); i=0; first=""; rest=""
    for s in "$@"; do
        if [ $i -lt $k ]; then rest="$rest $s"; else first="$first $s"; fi
        i=$((i + 1))
    done
    echo $first $rest
}

# drain deletes its users' mail: a copy taken now puts it back before each run.
if has drain; then
    mkdir -p "$WORK/drain-template"
    i=$((USERS + 1))
    while [ $i -le $((USERS + DRAIN_USERS)) ]; do
        cp -a "$WORK/mail/$(printf 'user%04d' $i)" "$WORK/drain-template/"
        i=$((i + 1))
    done
fi
refill_drain() {
    for d in "$WORK/drain-template"/*; do
        rm -rf "$WORK/mail/${d##*/}"
    done
    cp -a "$WORK/drain-template"/. "$WORK/mail/"
    [ "$DOVECOT" = yes ] && rm -rf "$WORK/dovecot/index"/user* "$WORK/dovecot/control"/user*
    return 0
}

# Warm-up: one short untimed pass per server moves new/ to cur/ everywhere and
# fills the page cache, so round 1 does not pay for it.
if has login || has download || has tls; then
    for srv in $SERVERS; do
        "$POPLOAD" --port "$(server_port "$srv")" --scenario download --users "$USERS" \
            --concurrency "$CONC" --duration 60 --sessions "$USERS" --password benchpw --quiet \
            >/dev/null 2>>"$WORK/popload.err" || true
    done
fi

r=1
while [ $r -le "$ROUNDS" ]; do
    if has login; then
        for srv in $(rotate $r $SERVERS_NULL); do
            run "$srv" login $r login --scenario login --users "$USERS" --concurrency "$CONC" \
                --duration "$DURATION"
        done
    fi
    if has download; then
        for srv in $(rotate $r $SERVERS_NULL); do
            run "$srv" download $r download --scenario download --users "$USERS" \
                --concurrency "$CONC" --duration "$DURATION"
        done
    fi
    if has drain; then
        for srv in $(rotate $r $SERVERS_NULL); do
            refill_drain
            run "$srv" drain $r drain --scenario drain --first-user $((USERS + 1)) \
                --users "$DRAIN_USERS" --concurrency "$CONC" --duration "$DURATION"
        done
    fi
    r=$((r + 1))
done

# --- TLS (issue 17) ----------------------------------------------------------------
# The implicit-TLS port of a server (STLS runs on the plain one).
tls_port() { case $1 in fastpop) echo "$FP_TLS_PORT" ;; dovecot) echo "$DC_TLS_PORT" ;; esac; }
# Every round: login over implicit TLS and over STLS, each with full handshakes and
# with resumption by ticket (--tls-resume: each connection slot offers the newest
# ticket it got), with the ECDSA certificate; the RSA one over implicit TLS; then
# download over implicit TLS. The order of servers rotates as above.
if has tls; then
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for run_tls in "ecdsa implicit" "ecdsa implicit resumed" "ecdsa stls" \
                       "ecdsa stls resumed" "rsa implicit" "rsa implicit resumed"; do
            set -- $run_tls
            for srv in $(rotate $r $SERVERS); do
                port=$(server_port "$srv")
                [ "$2" = implicit ] && port=$(tls_port "$srv")
                run "$srv" tls $r "tls login $run_tls" --port "$port" --tls "$2" \
                    --tls-cert "$1" ${3:+--tls-resume} --scenario login --users "$USERS" \
                    --concurrency "$CONC" --duration "$DURATION"
            done
        done
        for srv in $(rotate $r $SERVERS); do
            run "$srv" tls $r "tls download" --port "$(tls_port "$srv")" --tls implicit \
                --tls-cert ecdsa --scenario download --users "$USERS" --concurrency "$CONC" \
                --duration "$DURATION"
        done
        r=$((r + 1))
    done
fi

# idle: once per server (memory per connection barely varies between runs).
if has idle; then
    FIRST_IDLE=$((USERS + DRAIN_USERS + 1))
    for srv in $SERVERS; do
        n=$IDLE
        [ "$srv" = dovecot ] && n=$DOVECOT_IDLE
        [ "$srv" = courier ] && n=$COURIER_IDLE
        procs=$(( (n + 17999) / 18000 ))
        sources=$(( (n + 19999) / 20000 + 1 ))
        run "$srv" idle 1 idle --scenario idle --first-user "$FIRST_IDLE" --users "$n" \
            --connections "$n" --hold "$HOLD" --procs "$procs" --sources "$sources" \
            --concurrency 100 --duration 300 --timeout 20
        sleep 3   # let the server close the sessions before the next run
        # More than 30,000 asked may pass the server's descriptor budget (refused
        # with -ERR [SYS/TEMP]): the target "30,000 held without an error" gets its
        # own run of exactly 30,000.
        # Each fastpop idle run after the first starts on a fresh server: the heap a
        # previous run grew stays in the baseline and would hide part of the next cost.
        if [ "$srv" = fastpop ] && [ "$n" -gt 30000 ]; then
            stop_fastpop; start_fastpop
            run "$srv" idle 1 "idle 30k" --scenario idle --first-user "$FIRST_IDLE" \
                --users 30000 --connections 30000 --hold "$HOLD" --procs 2 --sources 3 \
                --concurrency 100 --duration 300 --timeout 20
            sleep 3
        fi
    done
    # idle over implicit TLS (ECDSA certificate, full handshakes), fastpop on a fresh
    # server as above; Dovecot with fewer connections (a process each, as plain).
    if [ "$TLS_IDLE" -gt 0 ]; then
        for srv in $SERVERS; do
            n=$TLS_IDLE
            [ "$srv" = dovecot ] && n=$DOVECOT_TLS_IDLE
            [ "$srv" = fastpop ] && { stop_fastpop; start_fastpop; }
            run "$srv" idle 1 "idle TLS" --port "$(tls_port "$srv")" --tls implicit \
                --tls-cert ecdsa --scenario idle --first-user "$FIRST_IDLE" --users "$n" \
                --connections "$n" --hold "$HOLD" --procs $(( (n + 17999) / 18000 )) \
                --sources $(( (n + 19999) / 20000 + 1 )) --concurrency 100 --duration 300 \
                --timeout 20
            sleep 3
        done
    fi
fi

# bigbox: cold (index removed, files in page cache), then warm; then syscalls.
syscalls() {  # server user: syscalls of the whole server tree for one login+STAT+QUIT
    srv=$1 user=$2
    pids=$(python3 "$BENCH/report.py" pids "$(server_pid "$srv")")
    set --
    for p in $pids; do set -- "$@" -p "$p"; done
    # One untimed login first: both mailboxes are then measured warm (the state
    # directory was wiped for the cold rounds, which left user0001 unindexed).
    "$POPLOAD" --port "$(server_port "$srv")" --scenario bigbox --stat-only --user "$user" \
        --password benchpw --concurrency 1 --sessions 1 --quiet >/dev/null 2>&1 || true
    strace -f -c -o "$WORK/strace.$srv.$user" "$@" 2>/dev/null &
    spid=$!
    sleep 1
    "$POPLOAD" --port "$(server_port "$srv")" --scenario bigbox --stat-only --user "$user" \
        --password benchpw --concurrency 1 --sessions 1 --quiet >/dev/null 2>&1 || true
    sleep 0.5
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true
    calls=$(awk '$NF == "total" { print $4 }' "$WORK/strace.$srv.$user")
    echo "{\"server\":\"$srv\",\"scenario\":\"bigbox\",\"label\":\"syscalls $user\",\"round\":1,\"run\":{\"syscalls\":${calls:-0}}}" >>"$RESULTS"
    say "$srv: $user login+STAT+QUIT: ${calls:-?} syscalls"
}
if has bigbox && [ "$BIGBOX" -gt 0 ]; then
    for srv in $SERVERS; do
        # one untimed pass: moves new/ to cur/ so cold runs see the same files
        "$POPLOAD" --port "$(server_port "$srv")" --scenario bigbox --user bigbox --password benchpw \
            --concurrency 1 --sessions 1 --timeout 300 --quiet >/dev/null 2>&1 || true
    done
    r=1
    while [ $r -le "$ROUNDS" ]; do
        for srv in $(rotate $r $SERVERS); do
            if [ "$srv" = fastpop ]; then stop_fastpop; start_fastpop; fi
            [ "$srv" = dovecot ] && rm -rf "$WORK/dovecot/index/bigbox" "$WORK/dovecot/control/bigbox"
            # Courier's UIDL and size cache of the mailbox.
            [ "$srv" = courier ] && rm -f "$WORK/mail/bigbox/Maildir/courierpop3dsizelist"
            run "$srv" bigbox $r "cold STAT" --scenario bigbox --stat-only --user bigbox \
                --concurrency 1 --sessions 1 --timeout 300
            run "$srv" bigbox $r "warm STAT" --scenario bigbox --stat-only --user bigbox \
                --concurrency 1 --sessions 5 --timeout 300
            run "$srv" bigbox $r "warm UIDL" --scenario bigbox --user bigbox \
                --concurrency 1 --sessions 3 --timeout 300
        done
        r=$((r + 1))
    done
    if command -v strace >/dev/null; then
        for srv in $SERVERS; do
            syscalls "$srv" bigbox
            syscalls "$srv" user0001
        done
    fi
fi

# --- delivery and the small-message drain (t/bench/delivery.py) -----------------
# Per server its own users: the search's trials (fresh users each), then the drain.
if has delivery && [ "$DELIVERY_USERS" -gt 0 ]; then
    FIRST_DELIVERY=$((USERS + DRAIN_USERS + MAXIDLE + 1))
    k=0
    for srv in $SERVERS; do
        first=$((FIRST_DELIVERY + k * PER_SERVER_DELIVERY))
        k=$((k + 1))
        say "delivery search against $srv"
        line=$(python3 "$BENCH/delivery.py" --port "$(server_port "$srv")" \
               --server-pid "$(server_pid "$srv")" --mail-root "$WORK/mail" --first-user "$first" \
               --users "$DELIVERY_USERS" --search --duration "$DELIVERY_DURATION" \
               --budget "$DELIVERY_BUDGET" --max-trials "$DELIVERY_TRIALS" --password benchpw \
               2>>"$WORK/delivery.err" | tail -1) || true
        [ -n "$line" ] || line='{"errors":-1}'
        echo "{\"server\":\"$srv\",\"scenario\":\"delivery\",\"label\":\"delivery\",\"round\":1,\"run\":$line}" >>"$RESULTS"
        echo "$line" | cut -c1-200 >&2
    done
    # The small-message drain, DRAIN_ROUNDS times, the order of servers rotating: the
    # same users each time (delivery.py --drain fills them again), so a machine whose load
    # changes from minute to minute weighs on every server alike.
    r=1
    while [ "$r" -le "$DRAIN_ROUNDS" ]; do
        for srv in $(rotate $r $SERVERS); do
            k=0
            for s2 in $SERVERS; do [ "$s2" = "$srv" ] && break; k=$((k + 1)); done
            first=$((FIRST_DELIVERY + k * PER_SERVER_DELIVERY))
            say "small-message drain (20 clients) against $srv, round $r"
            line=$(python3 "$BENCH/delivery.py" --drain --port "$(server_port "$srv")" \
                   --server-pid "$(server_pid "$srv")" --mail-root "$WORK/mail" \
                   --first-user $((first + DELIVERY_USERS * DELIVERY_TRIALS)) \
                   --users "$DRAIN_SMALL_USERS" --messages-per-user 50 --clients 20 \
                   --password benchpw 2>>"$WORK/delivery.err" | tail -1) || true
            [ -n "$line" ] || line='{"errors":-1}'
            echo "{\"server\":\"$srv\",\"scenario\":\"delivery\",\"label\":\"drain small\",\"round\":$r,\"run\":$line}" >>"$RESULTS"
            echo "$line" | cut -c1-200 >&2
        done
        r=$((r + 1))
    done
fi

# --- report ----------------------------------------------------------------------
# The previous results stay below the new ones (their table and targets).
[ -f "$OUT" ] && cp "$OUT" "$WORK/previous.md"
python3 "$BENCH/report.py" table "$RESULTS" "$OUT" --previous "$WORK/previous.md" \
    --command "sh t/bench/compare.sh $ARGS" --dovecot "$( [ "$DOVECOT" = yes ] && /usr/sbin/dovecot --version || echo none)" \
    --courier "$( [ "$COURIER" = yes ] && sh "$BENCH/courier.sh" --version || echo none)" \
    --settings "rounds=$ROUNDS duration=${DURATION}s users=$USERS drain_users=$DRAIN_USERS concurrency=$CONC idle=$IDLE dovecot_idle=$DOVECOT_IDLE tls_idle=$TLS_IDLE dovecot_tls_idle=$DOVECOT_TLS_IDLE courier_idle=$COURIER_IDLE bigbox=$BIGBOX delivery_users=$DELIVERY_USERS delivery_duration=${DELIVERY_DURATION}s delivery_budget=${DELIVERY_BUDGET}s workers=$NCPU loadavg_start=($LOAD_START) loadavg_end=($(cut -d' ' -f1-3 /proc/loadavg))" \
    --src "$SRC"
say "wrote $OUT"

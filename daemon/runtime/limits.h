/*
 * The limits that more than one process, or the protocol, or the operator
 * depends on: each with its reason, and the invariants between them checked
 * by the compiler below, so a change that breaks one fails the build instead
 * of a login. (popa3d's params.h is the model.)
 *
 * Sizes are buffer sizes unless said otherwise: a string must be shorter
 * than its limit, leaving room for the NUL. A limit used by one file only
 * stays next to the code it bounds.
 */
#ifndef FASTPOP_LIMITS_H
#define FASTPOP_LIMITS_H

/* ---- POP3, as the client sees it ------------------------------------------ */

/* RFC 2449 section 4: a command line is at most 255 octets without CRLF. */
#define POP3_LINE_MAX 255

/*
 * The longest SASL response line taken while an exchange waits for one.
 * RFC 5034 section 4 asks for what the mechanisms need: our largest is PLAIN
 * with a 255-octet authzid and authcid and a 1023-octet password, 2,048
 * octets of base64. The AUTH command itself keeps POP3_LINE_MAX.
 */
#define POP3_SASL_LINE_MAX 4000

/*
 * A connection's input buffer, which must hold a whole line (CRLF
 * included): RFC 2449's 255 octets with room for a burst of pipelined
 * commands; input stops being read when it is full.
 */
#define CONN_IN_LIMIT 4096

/*
 * A user name (daemon/runtime/username.h), as a buffer: 127 bytes hold any real
 * login or address. Sessions, the scoreboard and logs carry it whole.
 */
#define USERNAME_MAX 128

/* router_backends: a farm of fetch servers, not a cloud; the health checks run in one poll loop. */
#define CONFIG_ROUTER_BACKENDS_MAX 32

/* ---- worker <-> fastpop-auth ------------------------------------------- */

/* One IPC datagram (daemon/runtime/ipc.h): every message between processes fits. */
#define IPC_MAX_MESSAGE 4096

/*
 * The helper protocol's fields (auth/protocol.h). Both ends decode with
 * ipc_get_str(r, buf, LIMIT) and the IPC reader rejects longer strings.
 */
#define AUTH_USER_MAX 256
#define AUTH_PASS_MAX 1024
#define AUTH_IP_MAX 64
#define AUTH_MECH_MAX 32
#define AUTH_PATH_MAX 1024
#define AUTH_MESSAGE_MAX 256
/* A backend's name as the directory's host attribute holds it (route_pick.h: 64 + NUL). */
#define AUTH_HOST_MAX 65
/*
 * Per-user POP3 policy (daemon/runtime/user_policy.h). LOGIN-DELAY: a day at
 * most; a longer wait between logins is no polling policy but a closed
 * account, which disablepop3 says better. EXPIRE: ten years at most, far
 * past any retention policy, and small enough that days * 86400 never
 * overflows a time_t anywhere.
 */
#define USER_POLICY_LOGIN_DELAY_MAX 86400
#define USER_POLICY_EXPIRE_DAYS_MAX 3650
/* One SCRAM message; real ones are under 300 bytes. */
#define AUTH_SCRAM_MSG_MAX 1024

/*
 * Seconds a worker waits for the helper's answer before it treats the
 * helper as down for that login ([SYS/TEMP]). Everything the helper may
 * spend on one request must fit inside it.
 */
#define AUTH_TIMEOUT_SECONDS 15

/*
 * The most a helper request may take on purpose (fastpop.conf bounds):
 * ldap_timeout (one whole LDAP lookup) and auth_penalty_delay /
 * auth_penalty_max_delay (a failed login held before its answer; counted
 * from the request's arrival, so the two do not add up).
 */
#define LDAP_TIMEOUT_MAX 12
#define AUTH_PENALTY_DELAY_MAX 12

/* ---- the shared stores ---------------------------------------------------- */

/* The scoreboard's user field (shm/scoreboard.h): popctl who/kick match whole names. */
#define SCOREBOARD_USER_MAX 128

/*
 * The credential cache (shm/credcache.h), written by the helper and read by
 * workers: a login name as typed is the key (LMDB keys may be 511 bytes),
 * the canonical user and the maildir the helper answered are the record.
 */
#define CREDCACHE_KEY_MAX 256
#define CREDCACHE_USER_MAX 256
#define CREDCACHE_PATH_MAX 1024

/* ---- processes and configuration ----------------------------------------- */

/* workers = N (fastpop.conf): one per CPU is the point; 256 covers any machine we run on. */
#define WORKERS_MAX 256

/*
 * Threads a worker runs its mailbox loads and QUIT updates on
 * (worker/offload.h). Those wait on the file system, not the CPU: an
 * unlink, a rename or the fsync of cur/ waits for ext4's journal (0.5 to
 * several ms each on a busy disk), and metadata calls in flight together
 * share its commits. One thread made every session's QUIT wait for the
 * others' (the 20-client drain fell to 0.3x Dovecot's rate, whose
 * processes all wait in parallel); 8 per worker keep the disk busy at the
 * concurrency of the benchmark's drain and cost 1 MB of address space
 * each. The maximum only bounds the worker's table of threads.
 */
#define OFFLOAD_THREADS 8
#define OFFLOAD_THREADS_MAX 64

/*
 * Children the master tracks, and slots in the statistics region: a reload
 * runs the old and the new generation at once (workers, one auth helper, the
 * metrics process each).
 */
#define MAX_CHILDREN 1024

/* Lines of listen = and of tls_cert/tls_key pairs: a handful is every real setup. */
#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_CERTS 8
/* Names (users, groups, attributes) and paths in fastpop.conf, as buffers. */
#define CONFIG_NAME_MAX 64
#define CONFIG_PATH_MAX 512

/* ---- invariants ---------------------------------------------------------- */

_Static_assert(POP3_LINE_MAX + 2 <= CONN_IN_LIMIT,
               "a command line and its CRLF fit the input buffer");
_Static_assert(POP3_SASL_LINE_MAX + 2 <= CONN_IN_LIMIT,
               "a SASL response line and its CRLF fit the input buffer");
_Static_assert((2 * (AUTH_USER_MAX - 1) + (AUTH_PASS_MAX - 1) + 2 + 2) / 3 * 4 <=
                   POP3_SASL_LINE_MAX,
               "the largest PLAIN message the helper takes fits one SASL line as base64");
_Static_assert((AUTH_SCRAM_MSG_MAX - 1 + 2) / 3 * 4 <= POP3_SASL_LINE_MAX,
               "a SCRAM message the helper takes fits one SASL line as base64");
_Static_assert(3 * AUTH_SCRAM_MSG_MAX + AUTH_IP_MAX + 64 <= IPC_MAX_MESSAGE,
               "SCRAM's finish (client-first, server-first, client-final, ip) is one IPC message");
_Static_assert(AUTH_USER_MAX + AUTH_PATH_MAX + AUTH_SCRAM_MSG_MAX + AUTH_MESSAGE_MAX + 64 <=
                   IPC_MAX_MESSAGE,
               "SCRAM's result (user, maildir, server-final, message) is one IPC message");
_Static_assert(AUTH_USER_MAX + AUTH_PASS_MAX + AUTH_IP_MAX + AUTH_MECH_MAX + 64 <= IPC_MAX_MESSAGE,
               "a password request is one IPC message");
_Static_assert(AUTH_USER_MAX + AUTH_PATH_MAX + AUTH_MESSAGE_MAX + AUTH_HOST_MAX + 64 <= IPC_MAX_MESSAGE,
               "a helper answer is one IPC message");
_Static_assert(USERNAME_MAX <= AUTH_USER_MAX, "a name the rule takes fits the helper protocol");
_Static_assert(USERNAME_MAX <= SCOREBOARD_USER_MAX, "the scoreboard holds every user name");
_Static_assert(USERNAME_MAX <= CREDCACHE_KEY_MAX, "every login name can be a cache key");
_Static_assert(AUTH_USER_MAX <= CREDCACHE_USER_MAX && AUTH_PATH_MAX <= CREDCACHE_PATH_MAX,
               "the cache holds whatever the helper answered");
_Static_assert(LDAP_TIMEOUT_MAX < AUTH_TIMEOUT_SECONDS,
               "an LDAP lookup ends before the worker stops waiting for the helper");
_Static_assert(AUTH_PENALTY_DELAY_MAX < AUTH_TIMEOUT_SECONDS,
               "a penalised answer comes before the worker stops waiting for the helper");
_Static_assert(OFFLOAD_THREADS >= 1 && OFFLOAD_THREADS <= OFFLOAD_THREADS_MAX,
               "a worker starts the threads its table holds");
_Static_assert(2 * (WORKERS_MAX + 2) <= MAX_CHILDREN,
               "two generations of children fit the master's table");

#endif

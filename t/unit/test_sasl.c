/*
 * SASL: the worker's PLAIN parsing (worker/sasl.c; base64 is t/unit/test_base64.c), and the
 * helper's SCRAM-SHA-256 server (auth/scram_server.c) against RFC 7677's
 * test vector and against a client written here, through the helper's
 * request path (auth/requests.c), the real IPC messages and a password file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sys/socket.h>

#include "auth/passdb.h"
#include "auth/requests.h"
#include "daemon/runtime/event_loop.h"
#include "auth/protocol.h"
#include "auth/scram_server.h"
#include "daemon/runtime/ipc.h"
#include "worker/sasl.h"

/* --- PLAIN ----------------------------------------------------------------- */

static int plain(const char *msg, size_t len, const char **z, const char **c, const char **p)
{
    static char buf[128];
    memcpy(buf, msg, len);
    buf[len] = '\0';
    return sasl_plain_parse(buf, len, z, c, p);
}

static void test_plain(void **state)
{
    const char *z, *c, *p;
    (void)state;

    assert_int_equal(plain("\0tim\0tanstaaftanstaaf", 21, &z, &c, &p), 0);
    assert_string_equal(z, "");
    assert_string_equal(c, "tim");
    assert_string_equal(p, "tanstaaftanstaaf");
    assert_int_equal(plain("Ursel\0Kurt\0xipj3plmq", 20, &z, &c, &p), 0);
    assert_string_equal(z, "Ursel");
    assert_string_equal(c, "Kurt");
    assert_string_equal(p, "xipj3plmq");
    assert_int_equal(plain("\0bob\0pass with spaces ", 22, &z, &c, &p), 0);
    assert_string_equal(p, "pass with spaces ");

    /* Empty authcid or password, missing or extra NULs, empty message. */
    assert_int_equal(plain("\0\0pw", 4, &z, &c, &p), -1);
    assert_int_equal(plain("\0tim\0", 5, &z, &c, &p), -1);
    assert_int_equal(plain("\0tim", 4, &z, &c, &p), -1);
    assert_int_equal(plain("timpw", 5, &z, &c, &p), -1);
    assert_int_equal(plain("\0tim\0pw\0x", 9, &z, &c, &p), -1);
    assert_int_equal(plain("", 0, &z, &c, &p), -1);
}

static void test_mechanisms(void **state)
{
    (void)state;
    assert_int_equal(sasl_mech_lookup("plain"), SASL_PLAIN);
    assert_int_equal(sasl_mech_lookup("SCRAM-SHA-256"), SASL_SCRAM_SHA_256);
    assert_int_equal(sasl_mech_lookup("SCRAM-SHA-1"), -1);
    assert_int_equal(sasl_mechs_parse("PLAIN  LOGIN\tbogus"),
                     (1u << SASL_PLAIN) | (1u << SASL_LOGIN));
    assert_int_equal(sasl_mechs_parse(""), 0);
    assert_string_equal(sasl_mech_name(SASL_LOGIN), "LOGIN");
}

/* --- SCRAM: RFC 7677 section 3 --------------------------------------------- */

static const char RFC_FIRST[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char RFC_SERVER_FIRST[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char RFC_FINAL[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char RFC_SERVER_FINAL[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static void rfc_keys(struct scheme_scram *keys)
{
    unsigned char salt[18];   /* DecodeBlock writes the padding's zero bytes too */
    assert_int_equal(EVP_DecodeBlock(salt, (const unsigned char *)"W22ZaJ0SNY7soEsUEjb6gQ==", 24),
                     18);
    assert_int_equal(scram_derive_keys("pencil", salt, 16, 4096, keys), 0);
}

static void test_scram_rfc7677_vector(void **state)
{
    struct scram_client_first cf;
    struct scheme_scram keys;
    char out[128];
    (void)state;

    assert_int_equal(scram_parse_client_first(RFC_FIRST, &cf), 0);
    assert_string_equal(cf.user, "user");
    assert_string_equal(cf.nonce, "rOprNGfwEbeRWgbNEkqO");
    assert_int_equal(cf.gs2_len, 3);
    assert_string_equal(cf.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
    rfc_keys(&keys);
    assert_int_equal(scram_verify_final(&keys, RFC_FIRST, &cf, RFC_SERVER_FIRST, RFC_FINAL, out,
                                        sizeof(out)),
                     0);
    assert_string_equal(out, RFC_SERVER_FINAL);

    /* The wrong password gives another key: EACCES. */
    struct scheme_scram wrong = keys;
    wrong.stored_key[0] ^= 1;
    assert_int_equal(scram_verify_final(&wrong, RFC_FIRST, &cf, RFC_SERVER_FIRST, RFC_FINAL, out,
                                        sizeof(out)),
                     -1);
    assert_int_equal(errno, EACCES);

    /* A changed proof, nonce, or channel binding field: refused. */
    char tampered[256];
    snprintf(tampered, sizeof(tampered), "%s", RFC_FINAL);
    tampered[strlen(tampered) - 3] ^= 1;
    assert_int_equal(scram_verify_final(&keys, RFC_FIRST, &cf, RFC_SERVER_FIRST, tampered, out,
                                        sizeof(out)),
                     -1);
    const char *bad_finals[] = {
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        "",
    };
    for (size_t i = 0; i < sizeof(bad_finals) / sizeof(bad_finals[0]); i++)
        assert_int_equal(scram_verify_final(&keys, RFC_FIRST, &cf, RFC_SERVER_FIRST, bad_finals[i],
                                            out, sizeof(out)),
                         -1);
}

static void test_scram_client_first_parsing(void **state)
{
    struct scram_client_first cf;
    (void)state;

    assert_int_equal(scram_parse_client_first("y,,n=a=2Cb=3Dc,r=xyz,ext=1", &cf), 0);
    assert_string_equal(cf.user, "a,b=c");
    assert_int_equal(scram_parse_client_first("n,a=bob,n=bob,r=x", &cf), 0);
    assert_string_equal(cf.authzid, "bob");
    assert_int_equal(cf.gs2_len, 8);
    assert_int_equal(scram_parse_client_first("p=tls-unique,,n=u,r=x", &cf), -1);
    assert_int_equal(errno, ENOTSUP);
    const char *bad[] = { "", "n", "n,", "n,,", "x,,n=u,r=x", "n,,m=ext,n=u,r=x", "n,,n=,r=x",
                          "n,,n=u", "n,,n=u,r=", "n,,n=a=2Xb,r=x", "n,,n=a=,r=x", "n,,r=x,n=u",
                          "n,,n=u,r=a b" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(scram_parse_client_first(bad[i], &cf), -1);
        assert_int_equal(errno, EINVAL);
    }
}

/* --- SCRAM through the helper's message handler ----------------------------- */

static char tmpdir[64];
static struct passdb pdb;
static struct auth_requests disp;   /* the helper's request path, serving sv[1] */
static struct ev_loop *ev;          /* its timers */
static int sv[2];                   /* sv[0]: the "worker" */
static time_t fake_now;

static time_t clock_now(void)
{
    return fake_now;
}

static void b64enc(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int setup_helper(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fastpop-sasl-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char path[128];
    snprintf(path, sizeof(path), "%s/passwd", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* carol: Dovecot-format SCRAM keys for "pencil" with the RFC's salt. */
    struct scheme_scram k;
    rfc_keys(&k);
    char sk[64], svk[64];
    b64enc(k.stored_key, 32, sk);
    b64enc(k.server_key, 32, svk);
    fprintf(f, "carol:{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,%s,%s::::/home/carol::\n", sk,
            svk);
    fprintf(f, "alice:{PLAIN}alice-pw::::/home/alice::\n");
    fprintf(f, "dave:$6$saltsalt$yjphRGLvGHNo7ev/GcALFIgdOsb9ac/iHNKlzczhgy0DMvdlJEU/GbEaCXBUyt9Gv"
               "FFoUlKbUh4W0UkxhQB2r/::::/home/dave::\n");
    fclose(f);
    struct config cfg;
    config_defaults(&cfg);
    snprintf(cfg.passwd_file, sizeof(cfg.passwd_file), "%s", path);
    /* Answers leave at once: the penalty and the rate limit are test_auth_requests.c's. */
    cfg.auth_penalty = 0;
    cfg.auth_rate_limit = 0;
    assert_int_equal(passdb_init(&pdb, &cfg), 0);
    ev = ev_loop_new();
    assert_non_null(ev);
    assert_int_equal(requests_init(&disp, &pdb, ev), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
                     0);
    requests_peer_open(&disp, 0, sv[1], getpid());
    static const unsigned char secret[32] = "test secret for scram nonces..";
    scram_set_secret(secret, sizeof(secret));
    fake_now = 1700000000;
    scram_set_clock(clock_now);
    return 0;
}

static int teardown_helper(void **state)
{
    char cmd[128];
    (void)state;
    requests_peer_closed(&disp, 0);
    requests_free(&disp);
    ev_loop_free(ev);
    close(sv[0]);
    close(sv[1]);
    passdb_free(&pdb);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    scram_set_clock(NULL);
    return 0;
}

/* One request through the helper's request path, as a worker sends it; the reply into a. */
static void exchange(uint32_t type, const char *const *fields, int n, struct auth_reply *a)
{
    struct buf req;
    unsigned char msg[IPC_MAX_MESSAGE];

    buf_init(&req, IPC_MAX_MESSAGE);
    if (type == AUTH_MSG_SCRAM_START) {
        assert_int_equal(n, 1);
        assert_int_equal(protocol_encode_scram_start(&req, 7, fields[0], "192.0.2.1"), 0);
    } else {
        assert_int_equal(n, 3);
        assert_int_equal(protocol_encode_scram_finish(&req, 7, fields[0], fields[1], fields[2],
                                                      "192.0.2.1"),
                         0);
    }
    assert_int_equal(ipc_send(sv[0], &req), 0);
    assert_int_equal(requests_serve(&disp, 0, 1), 0);
    requests_run(&disp);
    ssize_t len = ipc_recv(sv[0], msg, sizeof(msg));
    assert_true(len > 0);
    assert_int_equal(protocol_decode_reply(msg, (size_t)len, a), 0);
    assert_int_equal(a->id, 7);
    buf_free(&req);
}

/* The client side of RFC 5802, in C: client-final for server_first. */
static void client_final(const char *first_bare, const char *server_first, const char *password,
                         char *out, size_t outlen, char *expect_v)
{
    char nonce[256], salt_b64[256];
    unsigned long iter;
    unsigned char salt[256], salted[32], ck[32], sk[32], stored[32], sig[32], proof[32];
    unsigned int len;
    char without[512], auth[1536], proof_b64[64], v[64];

    assert_int_equal(sscanf(server_first, "r=%255[^,],s=%255[^,],i=%lu", nonce, salt_b64, &iter),
                     3);
    int slen = EVP_DecodeBlock(salt, (unsigned char *)salt_b64, (int)strlen(salt_b64));
    slen -= (int)(strlen(salt_b64) - strcspn(salt_b64, "="));
    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, slen, (int)iter, EVP_sha256(), 32,
                      salted);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, &len);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, sk, &len);
    EVP_Digest(ck, 32, stored, NULL, EVP_sha256(), NULL);
    snprintf(without, sizeof(without), "c=biws,r=%s", nonce);
    snprintf(auth, sizeof(auth), "%s,%s,%s", first_bare, server_first, without);
    HMAC(EVP_sha256(), stored, 32, (unsigned char *)auth, strlen(auth), sig, &len);
    for (int i = 0; i < 32; i++)
        proof[i] = ck[i] ^ sig[i];
    b64enc(proof, 32, proof_b64);
    assert_true(snprintf(out, outlen, "%s,p=%s", without, proof_b64) < (int)outlen);
    HMAC(EVP_sha256(), sk, 32, (unsigned char *)auth, strlen(auth), sig, &len);
    b64enc(sig, 32, v);
    sprintf(expect_v, "v=%s", v);
}

/* A whole exchange for user/password; returns the RESULT status. */
static uint32_t run_scram(const char *user, const char *password, struct auth_reply *res)
{
    char first[256], final[512], v[64];
    struct auth_reply ch;

    snprintf(first, sizeof(first), "n,,n=%s,r=clientnonce123", user);
    const char *start[] = { first };
    exchange(AUTH_MSG_SCRAM_START, start, 1, &ch);
    assert_int_equal(ch.type, AUTH_MSG_SCRAM_CHALLENGE);
    assert_int_equal(ch.status, AUTH_OK);
    assert_string_equal(ch.user, user);
    assert_memory_equal(ch.sasl, "r=clientnonce123", 16);
    client_final(first + 3, ch.sasl, password, final, sizeof(final), v);
    const char *finish[] = { first, ch.sasl, final };
    exchange(AUTH_MSG_SCRAM_FINISH, finish, 3, res);
    assert_int_equal(res->type, AUTH_MSG_SCRAM_RESULT);
    if (res->status == AUTH_OK)
        assert_string_equal(res->sasl, v);
    return res->status;
}

static void test_scram_exchange(void **state)
{
    struct auth_reply res;
    (void)state;

    assert_int_equal(run_scram("carol", "pencil", &res), AUTH_OK);
    assert_string_equal(res.user, "carol");
    assert_string_equal(res.maildir, "/home/carol/Maildir");
    assert_int_equal(run_scram("alice", "alice-pw", &res), AUTH_OK);   /* {PLAIN}: derived keys */
    assert_int_equal(run_scram("carol", "wrong", &res), AUTH_FAIL);
    assert_int_equal(run_scram("alice", "wrong", &res), AUTH_FAIL);
    assert_int_equal(run_scram("dave", "whatever", &res), AUTH_FAIL);  /* $6$: no SCRAM */
    assert_int_equal(run_scram("nobody", "x", &res), AUTH_FAIL);       /* unknown: looks alike */
    assert_string_equal(res.sasl, "");
}

static void test_scram_server_first_is_ours(void **state)
{
    char first[] = "n,,n=carol,r=abc", final[512], v[64];
    struct auth_reply ch, res;
    (void)state;

    const char *start[] = { first };
    exchange(AUTH_MSG_SCRAM_START, start, 1, &ch);
    /* Unknown and SCRAM users get the same shape of challenge. */
    struct auth_reply ch2;
    const char *start2[] = { "n,,n=nobody,r=abc" };
    exchange(AUTH_MSG_SCRAM_START, start2, 1, &ch2);
    assert_int_equal(ch2.status, AUTH_OK);
    assert_int_equal(strlen(ch2.sasl), strlen(ch.sasl));

    /* A server-first the helper did not make (nonce changed): refused. */
    char forged[AUTH_SCRAM_MSG_MAX];
    snprintf(forged, sizeof(forged), "%s", ch.sasl);
    forged[6] = forged[6] == 'A' ? 'B' : 'A';
    client_final(first + 3, forged, "pencil", final, sizeof(final), v);
    const char *f1[] = { first, forged, final };
    exchange(AUTH_MSG_SCRAM_FINISH, f1, 3, &res);
    assert_int_equal(res.status, AUTH_FAIL);

    /* Bound to client-first: replayed with another client-first, refused. */
    client_final("n=carol,r=abc", ch.sasl, "pencil", final, sizeof(final), v);
    const char *f2[] = { "n,,n=carol,r=abc,x=1", ch.sasl, final };
    exchange(AUTH_MSG_SCRAM_FINISH, f2, 3, &res);
    assert_int_equal(res.status, AUTH_FAIL);

    /* Too late: the exchange expired. */
    fake_now += SCRAM_EXCHANGE_SECONDS + 1;
    const char *f3[] = { first, ch.sasl, final };
    exchange(AUTH_MSG_SCRAM_FINISH, f3, 3, &res);
    assert_int_equal(res.status, AUTH_FAIL);
    fake_now -= SCRAM_EXCHANGE_SECONDS + 1;
    exchange(AUTH_MSG_SCRAM_FINISH, f3, 3, &res);
    assert_int_equal(res.status, AUTH_OK);

    /* Refused at START: channel binding, another authzid, garbage. */
    const char *s1[] = { "p=tls-unique,,n=carol,r=abc" };
    exchange(AUTH_MSG_SCRAM_START, s1, 1, &ch);
    assert_int_equal(ch.status, AUTH_FAIL);
    const char *s2[] = { "n,a=alice,n=carol,r=abc" };
    exchange(AUTH_MSG_SCRAM_START, s2, 1, &ch);
    assert_int_equal(ch.status, AUTH_FAIL);
    const char *s3[] = { "hello" };
    exchange(AUTH_MSG_SCRAM_START, s3, 1, &ch);
    assert_int_equal(ch.status, AUTH_FAIL);

    /* A malformed IPC message (no client address) is the peer's fault: dropped, unanswered. */
    struct buf req;
    unsigned char msg[16];
    buf_init(&req, IPC_MAX_MESSAGE);
    ipc_begin(&req, AUTH_MSG_SCRAM_START, 1);
    ipc_put_str(&req, first);
    assert_int_equal(ipc_send(sv[0], &req), 0);
    assert_int_equal(requests_serve(&disp, 0, 1), -1);
    assert_int_equal(ipc_recv(sv[0], msg, sizeof(msg)), -1);
    assert_int_equal(errno, EAGAIN);
    buf_free(&req);
}

/* The s= of the challenge START gives user. */
static void start_salt(const char *user, char *salt, size_t len)
{
    char first[128];
    struct auth_reply ch;
    snprintf(first, sizeof(first), "n,,n=%s,r=abc", user);
    const char *start[] = { first };
    exchange(AUTH_MSG_SCRAM_START, start, 1, &ch);
    assert_int_equal(ch.status, AUTH_OK);
    const char *s = strstr(ch.sasl, ",s=");
    assert_non_null(s);
    snprintf(salt, len, "%.*s", (int)strcspn(s + 3, ","), s + 3);
}

/* Made-up salts come from a secret kept in the helper's private directory: same after a restart. */
static void test_fake_salt_stable_across_restart(void **state)
{
    char state_dir[128], other[128], path[256], s1[64], s2[64], s3[64], carol[64];
    struct stat st;
    (void)state;

    snprintf(state_dir, sizeof(state_dir), "%s/state", tmpdir);
    snprintf(other, sizeof(other), "%s/other", tmpdir);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/authcache", i ? other : state_dir);
        assert_int_equal(mkdir(i ? other : state_dir, 0755), 0);
        assert_int_equal(mkdir(path, 0750), 0);
    }
    scram_forget_secrets();
    assert_int_equal(scram_load_salt_secret(state_dir), 0);
    start_salt("nobody", s1, sizeof(s1));
    start_salt("carol", carol, sizeof(carol));
    assert_string_equal(carol, "W22ZaJ0SNY7soEsUEjb6gQ==");   /* a stored user's own salt */
    snprintf(path, sizeof(path), "%s/authcache/private", state_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/authcache/private/scram-salt.key", state_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 32);

    /* "restart": every secret forgotten, the file read again */
    scram_forget_secrets();
    assert_int_equal(scram_load_salt_secret(state_dir), 0);
    start_salt("nobody", s2, sizeof(s2));
    assert_string_equal(s1, s2);
    /* another installation: another secret, another salt */
    scram_forget_secrets();
    assert_int_equal(scram_load_salt_secret(other), 0);
    start_salt("nobody", s3, sizeof(s3));
    assert_string_not_equal(s1, s3);
    /* a secret others may read is refused, not used */
    assert_int_equal(chmod(path, 0640), 0);
    scram_forget_secrets();
    assert_int_equal(scram_load_salt_secret(state_dir), -1);
    assert_int_equal(errno, EPERM);
}

/* START derives nothing for anyone; FINISH exactly one PBKDF2 for everyone. */
static void test_scram_equal_cost(void **state)
{
    const char *users[] = { "carol", "alice", "dave", "nobody" };
    char first[128], final[512], v[64];
    struct auth_reply ch, res;
    (void)state;

    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        snprintf(first, sizeof(first), "n,,n=%s,r=clientnonce", users[i]);
        const char *start[] = { first };
        uint64_t before = scram_kdf_runs();
        exchange(AUTH_MSG_SCRAM_START, start, 1, &ch);
        assert_int_equal(ch.status, AUTH_OK);
        assert_int_equal(scram_kdf_runs() - before, 0);
        client_final(first + 3, ch.sasl, "wrong", final, sizeof(final), v);
        const char *finish[] = { first, ch.sasl, final };
        before = scram_kdf_runs();
        exchange(AUTH_MSG_SCRAM_FINISH, finish, 3, &res);
        assert_int_equal(res.status, AUTH_FAIL);
        assert_int_equal(scram_kdf_runs() - before, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_mechanisms),
        cmocka_unit_test(test_scram_rfc7677_vector),
        cmocka_unit_test(test_scram_client_first_parsing),
        cmocka_unit_test_setup_teardown(test_scram_exchange, setup_helper, teardown_helper),
        cmocka_unit_test_setup_teardown(test_scram_server_first_is_ours, setup_helper,
                                        teardown_helper),
        cmocka_unit_test_setup_teardown(test_fake_salt_stable_across_restart, setup_helper,
                                        teardown_helper),
        cmocka_unit_test_setup_teardown(test_scram_equal_cost, setup_helper, teardown_helper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

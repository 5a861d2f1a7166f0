/*
 * SCRAM-SHA-256 in the helper (auth/scram_server.c, RFC 5802/7677): the
 * client-first and client-final messages come from the network through a
 * worker. Input: client-first, NUL, client-final. Invariants: parsed fields
 * are terminated and inside their buffers; a client-final with a forged
 * proof is never accepted; and the proof a real client would compute for
 * the same client-first is accepted (the harness computes it itself), so
 * the verifier is not simply refusing everything.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/scheme.h"
#include "auth/scram_server.h"
#include "daemon/runtime/base64.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PASSWORD[] = "pencil";
static const unsigned char SALT[] = "fuzz-salt-16byte";
enum { ITER = 4096 };

static struct scheme_scram keys;
static unsigned char client_key[SHA256_DIGEST_LENGTH];
static int ready;

static void setup(void)
{
    unsigned char salted[SHA256_DIGEST_LENGTH];
    unsigned len = 0;
    fuzz_check(scram_derive_keys(PASSWORD, SALT, 16, ITER, &keys) == 0, "derive keys");
    fuzz_check(PKCS5_PBKDF2_HMAC(PASSWORD, (int)strlen(PASSWORD), SALT, 16, ITER, EVP_sha256(),
                                 sizeof(salted), salted) == 1, "PBKDF2");
    fuzz_check(HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *)"Client Key",
                    10, client_key, &len) != NULL, "HMAC");
    ready = 1;
}

/* The client-final message of a client that knows the password. */
static int honest_final(const char *client_first, const struct scram_client_first *cf,
                        const char *server_first, const char *nonce, char *out, size_t outlen)
{
    char gs2_b64[512], without_proof[1024], auth_msg[4096], proof_b64[64];
    if (base64_encode(client_first, cf->gs2_len, gs2_b64, sizeof(gs2_b64)) == -1)
        return -1;
    if ((size_t)snprintf(without_proof, sizeof(without_proof), "c=%s,r=%s", gs2_b64, nonce) >=
            sizeof(without_proof) ||
        (size_t)snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%s", cf->bare, server_first,
                         without_proof) >= sizeof(auth_msg))
        return -1;
    unsigned char sig[SHA256_DIGEST_LENGTH], proof[SHA256_DIGEST_LENGTH];
    unsigned len = 0;
    HMAC(EVP_sha256(), keys.stored_key, sizeof(keys.stored_key), (unsigned char *)auth_msg,
         strlen(auth_msg), sig, &len);
    for (size_t i = 0; i < sizeof(proof); i++)
        proof[i] = client_key[i] ^ sig[i];
    base64_encode(proof, sizeof(proof), proof_b64, sizeof(proof_b64));
    return (size_t)snprintf(out, outlen, "%s,p=%s", without_proof, proof_b64) < outlen ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    if (!ready)
        setup();
    char text[2050];
    memcpy(text, data, size);
    text[size] = '\0';
    text[size + 1] = '\0';
    const char *client_first = text;
    const char *client_final = text + strlen(text) + 1;

    struct scram_client_first cf;
    memset(&cf, 0x5A, sizeof(cf));
    if (scram_parse_client_first(client_first, &cf) == -1)
        return 0;
    fuzz_check(memchr(cf.user, '\0', sizeof(cf.user)) && memchr(cf.nonce, '\0', sizeof(cf.nonce)) &&
               memchr(cf.authzid, '\0', sizeof(cf.authzid)), "a parsed field is not terminated");
    fuzz_check(cf.gs2_len <= strlen(client_first) && cf.bare >= client_first &&
               cf.bare <= client_first + strlen(client_first), "gs2 header or bare outside");

    char salt_b64[64], nonce[512], server_first[1024], server_final[256];
    base64_encode(SALT, 16, salt_b64, sizeof(salt_b64));
    snprintf(nonce, sizeof(nonce), "%sSERVERNONCE", cf.nonce);
    snprintf(server_first, sizeof(server_first), "r=%s,s=%s,i=%d", nonce, salt_b64, ITER);

    char honest[1024];
    if (honest_final(client_first, &cf, server_first, nonce, honest, sizeof(honest)) == 0) {
        fuzz_check(scram_verify_final(&keys, client_first, &cf, server_first, honest,
                                      server_final, sizeof(server_final)) == 0,
                   "the proof of a client that knows the password was refused");
        fuzz_check(strncmp(server_final, "v=", 2) == 0, "no server signature");
        /* The fuzzer's own client-final is accepted only if it is this one. */
        if (scram_verify_final(&keys, client_first, &cf, server_first, client_final,
                               server_final, sizeof(server_final)) == 0)
            fuzz_check(strcmp(client_final, honest) == 0, "a forged proof was accepted");
    }
    return 0;
}

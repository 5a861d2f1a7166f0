/*
 * Password schemes and the text codecs under them. The vectors were made
 * outside fastpop: openssl passwd (-1/-5/-6), slappasswd ({SSHA}), libxcrypt
 * crypt_gensalt + crypt through Python ctypes ($y$, $2b$), Python hashlib
 * ({SHA*}, {SSHA*}, SCRAM). The first SCRAM vector uses RFC 7677's salt and
 * password; its keys reproduce the RFC's ClientProof and ServerSignature.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "auth/scheme.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/hex.h"

#define PW "correct horse"

struct vector {
    const char *stored;
    const char *password;
};

static const struct vector good[] = {
    { "$6$Zq3vR8sT$f4HMMpXMnNyoFaF0r1Lph7182LWHZY2Ldmy4ZmxwSy2l6sRn1tucFGlPW1FAn5b.zIPWEwjzx81k66XymlGQn1", PW },
    { "{SHA512-CRYPT}$6$Zq3vR8sT$f4HMMpXMnNyoFaF0r1Lph7182LWHZY2Ldmy4ZmxwSy2l6sRn1tucFGlPW1FAn5b.zIPWEwjzx81k66XymlGQn1", PW },
    { "{CRYPT}$6$Zq3vR8sT$f4HMMpXMnNyoFaF0r1Lph7182LWHZY2Ldmy4ZmxwSy2l6sRn1tucFGlPW1FAn5b.zIPWEwjzx81k66XymlGQn1", PW },
    { "$5$Zq3vR8sT$EhjLscO3dOAlVeoBcEhvfGtJRPdIhM2xGxddPCt/dZ4", PW },
    { "{SHA256-CRYPT}$5$Zq3vR8sT$EhjLscO3dOAlVeoBcEhvfGtJRPdIhM2xGxddPCt/dZ4", PW },
    { "$1$Zq3vR8sT$GRoLY3GvPSzqt1rEt1pXI.", PW },
    { "{MD5-CRYPT}$1$Zq3vR8sT$GRoLY3GvPSzqt1rEt1pXI.", PW },
    { "$2b$04$.OGB/.SE/ueHAeqKBO2NC.37PvdBwBBS8kyV.ffBAgLR5S5mwTpUi", PW },
    { "{BLF-CRYPT}$2b$04$.OGB/.SE/ueHAeqKBO2NC.37PvdBwBBS8kyV.ffBAgLR5S5mwTpUi", PW },
    { "$y$j9T$/6k.2IU/5UE08g.1Bsk1E.$VYlnMd1Xpi858y2Z2H33CmaGGTzANl084f9QUEF5YHA", PW },
    { "{SSHA}DL3Gtr2MhmLkQZkuvRjs5bSVEn1Ug0a9", PW },          /* slappasswd */
    { "{SSHA}5pcxo13YdJml98eQSIlT3FMEBMMBAgME", PW },
    { "{ssha}5pcxo13YdJml98eQSIlT3FMEBMMBAgME", PW },          /* names ignore case */
    { "{SSHA256}0hJvnJrn389Ik7M3OR+qOZl6NBsSet72zG2p4yy6GwEBAgME", PW },
    { "{SSHA512}59hB/WwyfgQUZfHrhGKG7B924+SMQ9dsAndq2fAiQ192K1Up6+Uyb2bNkO/rs2mynGTKvujt8okIdKCusVizJwECAwQ=", PW },
    { "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", PW },
    { "{SHA1}L55TUjtiq8FBorTWAZ0jy6g129A=", PW },
    { "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A", PW },                /* padding left out */
    { "{SHA}2f9e53523b62abc141a2b4d6019d23cba835dbd0", PW },   /* hex, guessed by length */
    { "{SHA}2F9E53523B62ABC141A2B4D6019D23CBA835DBD0", PW },
    { "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=", PW },
    { "{SHA256}4104d36f8da2c254349f85836793ebe029e0c957063a34c91c2e9203187b5631", PW },
    { "{SHA256.HEX}4104d36f8da2c254349f85836793ebe029e0c957063a34c91c2e9203187b5631", PW },
    { "{SHA512}VraY3v7bWkNbY0r+MyC7rz/c2SC2xQOkRvx7endrKY1HnRumqLYXgI6wv1ec6aldZoNHvKtxSQhayTyyeZUZew==", PW },
    { "{SHA512}56b698defedb5a435b634afe3320bbaf3fdcd920b6c503a446fc7b7a776b298d479d1ba6a8b617808eb0bf579ce9a95d668347bcab7149085ac93cb27995197b", PW },
    { "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", "pencil" },
    { "{SCRAM-SHA-256}4096,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=", PW },
    { "{PLAIN}" PW, PW },
    { "{CLEARTEXT}" PW, PW },
};

/*
 * Made by the tools operators use, with the password "correct horse"
 * (dovecot-core 2.3.19, whois 5.5.17 for mkpasswd, slapd 2.5.13 for
 * slappasswd; the command above each). t/e2e/test_auth_schemes.py makes
 * fresh ones at test time with the tools installed on the host.
 */
static const struct vector tool_made[] = {
    /* doveadm pw -s SHA512-CRYPT */
    { "{SHA512-CRYPT}$6$9tYEajEx4lDcdmhV$lyQLq2rPMXlFwJtt2gOofpDnqp/kyFA.IaFzZURh.mKdEOviFkbBtloCziSFtGOIv0Gx8EITIiY3/x9vJIMQ70", PW },
    /* doveadm pw -s SHA256-CRYPT */
    { "{SHA256-CRYPT}$5$ua68hzqIin5DLt0C$mywwJBjVEQ80/kEs4KRfGTNRKn4xvFktDccO455Nyg0", PW },
    /* doveadm pw -s BLF-CRYPT */
    { "{BLF-CRYPT}$2y$05$PNGlXHZ/JAjOgaE0oBCT4eGY0t7vlCa6LnjaeFo7o3vu9cnb3k5Om", PW },
    /* doveadm pw -s CRYPT */
    { "{CRYPT}$2y$05$NxlznRm.SpDxHXz/FnrVKu3bxQj4A9HyXQxv5eHZKskJD8T82wtlq", PW },
    /* doveadm pw -s MD5-CRYPT */
    { "{MD5-CRYPT}$1$15LSL2D8$7HDH7mGa32nYRqvHJdLu/.", PW },
    /* doveadm pw -s SSHA */
    { "{SSHA}j0XS33DOCCoIX0V7iZPwZFV4xdqe4YGN", PW },
    /* doveadm pw -s SSHA256 */
    { "{SSHA256}xfOJuS1peRvvETjwbNEr7UAnU5DD+CVTDOE3Fcmnz92AL8by", PW },
    /* doveadm pw -s SSHA512 */
    { "{SSHA512}PMkCOBXxUJn7vcOELm4kpB5EuozpBwBIxRIU6W2svK4E130hsVW7RdacL+lK8VCU80Yii2PwVA+s7esxDWQUfvSFLMY=", PW },
    /* doveadm pw -s SHA */
    { "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", PW },
    /* doveadm pw -s SHA256 */
    { "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=", PW },
    /* doveadm pw -s SHA512 */
    { "{SHA512}VraY3v7bWkNbY0r+MyC7rz/c2SC2xQOkRvx7endrKY1HnRumqLYXgI6wv1ec6aldZoNHvKtxSQhayTyyeZUZew==", PW },
    /* doveadm pw -s SCRAM-SHA-256 */
    { "{SCRAM-SHA-256}4096,M+1J17RW3Ee1JFCk41Mslg==,aQSd2bvPnxtHBWzc7HuIzNlVURCV0opIlm7wiPSk5iw=,K3Q+i51roGwwOHvj38LBL62XuItHgy3xH4wxtFhdwHg=", PW },
    /* doveadm pw -s PLAIN */
    { "{PLAIN}correct horse", PW },
    /* doveadm pw -s CLEARTEXT */
    { "{CLEARTEXT}correct horse", PW },
    /* mkpasswd -m yescrypt */
    { "$y$j9T$5n/nRfVIwDbbvh81GXeMf1$O42GTeSVRPI7pK5LLyApvnDzrpZThE7/.DMwBQ0wp/.", PW },
    /* mkpasswd -m bcrypt */
    { "$2b$05$Wy7b1.NIJa.Klm6wYX.sreHG8FLfHiSh/d1YdquTV3MOdcXuMmkse", PW },
    /* mkpasswd -m sha512crypt */
    { "$6$1XbCcJOL9DNSlqy8$xy2arNJyVu71x.nrnG4Nt6skbqIFU9WOTkjsaz4q.Xvr3dg0lsfc6se2BMxcDwP.cqY.q71Z74oZU57mQ71Hh/", PW },
    /* mkpasswd -m sha256crypt */
    { "$5$dbAvKHYqm95oYf/r$wxVOBgh53sFctVbKPeS8JZK1F53.ePWbBjvWOW.jd./", PW },
    /* mkpasswd -m md5crypt */
    { "$1$wWEZQmqE$7AmYasSDzdQlkpSCO3esh0", PW },
    /* slappasswd -h {SSHA} */
    { "{SSHA}tVJkK/sYmT6Rchu1+rT3Rh9sQHg2lgBS", PW },
    /* slappasswd -h {SHA} */
    { "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", PW },
    /* slappasswd -h {CRYPT} -c '$6$%.16s' */
    { "{CRYPT}$6$4RWAYLA7ovGfUNIM$O8pxnwXb2g7utz8pK9bOt9jP91sJvGtHIIsbtPoG..l5TQ.jvHUSaJrm/26fL18ZEvWWD4ipJuGeCUWk7rq.L/", PW },
};

static void test_known_vectors_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        print_message("  %s\n", good[i].stored);
        assert_int_equal(scheme_verify(good[i].stored, good[i].password), SCHEME_MATCH);
        assert_int_equal(scheme_check(good[i].stored), SCHEME_MATCH);
    }
}

static void test_tool_made_vectors(void **state)
{
    struct scheme_scram keys;

    (void)state;
    for (size_t i = 0; i < sizeof(tool_made) / sizeof(tool_made[0]); i++) {
        print_message("  %s\n", tool_made[i].stored);
        assert_int_equal(scheme_check(tool_made[i].stored), SCHEME_MATCH);
        assert_int_equal(scheme_verify(tool_made[i].stored, tool_made[i].password),
                         SCHEME_MATCH);
        assert_int_equal(scheme_verify(tool_made[i].stored, "correct horsE"), SCHEME_MISMATCH);
        assert_int_equal(scheme_verify(tool_made[i].stored, "correct horse "), SCHEME_MISMATCH);
        assert_int_equal(scheme_verify(tool_made[i].stored, "x"), SCHEME_MISMATCH);
    }
    /* doveadm's SCRAM line also gives the keys SCRAM logins need. */
    for (size_t i = 0; i < sizeof(tool_made) / sizeof(tool_made[0]); i++) {
        if (strncmp(tool_made[i].stored, "{SCRAM-SHA-256}", 15) != 0)
            continue;
        assert_int_equal(scheme_scram_keys(tool_made[i].stored, &keys), SCHEME_MATCH);
        assert_int_equal(keys.iter, 4096);
        assert_int_equal(keys.saltlen, 16);
    }
}

static void test_wrong_password_mismatches(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(scheme_verify(good[i].stored, "correct horsE"), SCHEME_MISMATCH);
        assert_int_equal(scheme_verify(good[i].stored, "x"), SCHEME_MISMATCH);
    }
    /* PLAIN must not match a prefix or an extension of the password. */
    assert_int_equal(scheme_verify("{PLAIN}abc", "ab"), SCHEME_MISMATCH);
    assert_int_equal(scheme_verify("{PLAIN}abc", "abcd"), SCHEME_MISMATCH);
}

static void test_unknown_schemes(void **state)
{
    (void)state;
    assert_int_equal(scheme_verify("{ARGON2ID}$argon2id$v=19$m=65536", PW), SCHEME_UNKNOWN);
    assert_int_equal(scheme_verify("{NOPE}abc", PW), SCHEME_UNKNOWN);
    assert_int_equal(scheme_verify("{}abc", PW), SCHEME_UNKNOWN);
    assert_int_equal(scheme_verify("{SHA", PW), SCHEME_UNKNOWN);
    /* No prefix and no '$': not guessed at (it would be DES or plaintext). */
    assert_int_equal(scheme_verify(PW, PW), SCHEME_UNKNOWN);
    assert_int_equal(scheme_verify("", PW), SCHEME_UNKNOWN);
    /* An encoding suffix only exists for digest schemes. */
    assert_int_equal(scheme_verify("{PLAIN.HEX}616263", "abc"), SCHEME_UNKNOWN);
    assert_int_equal(scheme_verify("{SHA.ROT13}abc", PW), SCHEME_UNKNOWN);
    assert_int_equal(scheme_check("{NOPE}abc"), SCHEME_UNKNOWN);
}

static void test_malformed_hashes(void **state)
{
    static const char *const bad[] = {
        "{SHA}",                                        /* empty */
        "{SSHA}!!!!",                                   /* not base64 */
        "{SSHA}5pcxo13YdJml98eQSIlT3FMEBMM=",           /* digest only, no salt */
        "{SSHA}5pcx",                                   /* shorter than a digest */
        "{SHA}L55TUjtiq8FBorTWAZ0jy6g129",              /* cut: 19 bytes */
        "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=X",           /* junk after padding */
        "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A===",          /* too much padding */
        "{SHA} L55TUjtiq8FBorTWAZ0jy6g129A=",           /* whitespace */
        "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjEA",  /* 33 bytes */
        "{SHA}2f9e53523b62abc141a2b4d6019d23cba835dbzz",           /* hex length, bad digit */
        "{SHA256.HEX}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=",
        "{SCRAM-SHA-256}",
        "{SCRAM-SHA-256}4096",
        "{SCRAM-SHA-256}4096,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=",
        "{SCRAM-SHA-256}4096,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=,extra",
        "{SCRAM-SHA-256}4096x,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256}1,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256}999999999,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256}4096,,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256}4096,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3ud==,KzqaZikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256}4096,EBESExQVFhcYGRobHB0eHw==,UOqfZwCbXXDTuCrizoqrtXrFV8iU37kaMGkhq/x3udE=,Kzqa#ikndhh8ddarwxITa3uAy5NGsw+BHAXRy6TRhpU=",
        "{SCRAM-SHA-256},,,",
        "{CRYPT}",
        "{CRYPT}*",                                     /* locked */
        "!$6$Zq3vR8sT$f4HMMpXMnNyoFaF0r1Lph7182LWHZY2Ldmy4ZmxwSy2l6sRn1tucFGlPW1FAn5b.zIPWEwjzx81k66XymlGQn1",
        "$6$",
        "$nonsense$",
        "{PLAIN}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("  %s\n", bad[i]);
        /* "!$6$..." has no scheme prefix and no leading '$': unknown, not malformed. */
        enum scheme_result want = bad[i][0] == '!' ? SCHEME_UNKNOWN : SCHEME_MALFORMED;
        assert_int_equal(scheme_verify(bad[i], PW), want);
        assert_int_equal(scheme_check(bad[i]), want);
    }
    /* scheme_check() is only a cheap hint for crypt(3): the cost is checked
     * by the real hashing. */
    assert_int_equal(scheme_verify("$2b$99$.OGB/.SE/ueHAeqKBO2NC.37PvdBwBBS8kyV.ffBAgLR5S5mwTpUi", PW),
                     SCHEME_MALFORMED);
}

static void test_scheme_name_hides_hash(void **state)
{
    char out[64];
    (void)state;
    scheme_name("{SSHA512}59hB/WwyfgQUZ", out, sizeof(out));
    assert_string_equal(out, "{SSHA512}");
    scheme_name("$6$Zq3vR8sT$f4HMM", out, sizeof(out));
    assert_string_equal(out, "crypt");
    scheme_name("secret", out, sizeof(out));
    assert_string_equal(out, "none");
    scheme_name("{A B}x", out, sizeof(out));
    assert_string_equal(out, "{A\\x20B}");
    assert_string_equal(scheme_result_str(SCHEME_MISMATCH), "bad-password");
    assert_string_equal(scheme_result_str(SCHEME_MALFORMED), "malformed-hash");
}

static void test_hex(void **state)
{
    unsigned char out[4];
    (void)state;
    assert_int_equal(hex_decode("00fFa9", 6, out, sizeof(out)), 3);
    assert_memory_equal(out, "\x00\xff\xa9", 3);
    assert_int_equal(hex_decode("abc", 3, out, sizeof(out)), -1);
    assert_int_equal(hex_decode("0g", 2, out, sizeof(out)), -1);
    assert_int_equal(hex_decode("0011223344", 10, out, sizeof(out)), -1);
    assert_int_equal(errno, ENOBUFS);
}

static void test_log_escape(void **state)
{
    char out[64];
    (void)state;
    assert_string_equal(text_log_escape("bob@example.org", out, sizeof(out)), "bob@example.org");
    /* A name must not be able to forge a field or a line. */
    assert_string_equal(text_log_escape("a ip=1.2.3.4\nx", out, sizeof(out)),
                        "a\\x20ip=1.2.3.4\\x0ax");
    assert_string_equal(text_log_escape("\\\x7f\xc3\xa9", out, sizeof(out)),
                        "\\x5c\\x7f\\xc3\\xa9");
    assert_string_equal(text_log_escape("", out, sizeof(out)), "");
    /* Cut with a visible mark, never mid-escape, always terminated. */
    text_log_escape("abcdefghijklmnopqrstuvwxyz", out, 12);
    assert_string_equal(out, "abcdefgh...");
    text_log_escape("\n\n\n\n\n", out, 12);
    assert_true(strlen(out) < 12);
    assert_non_null(strstr(out, "..."));
    assert_null(strchr(out, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors_match),
        cmocka_unit_test(test_tool_made_vectors),
        cmocka_unit_test(test_wrong_password_mismatches),
        cmocka_unit_test(test_unknown_schemes),
        cmocka_unit_test(test_malformed_hashes),
        cmocka_unit_test(test_scheme_name_hides_hash),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_log_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

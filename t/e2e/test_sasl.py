"""AUTH (RFC 5034) against the real fastpopd: PLAIN (RFC 4616) with and
without an initial response, LOGIN, SCRAM-SHA-256 (RFC 7677) with a client
written here from RFC 5802 with hashlib/hmac, cancelling with "*", bad
base64, a bare AUTH listing the mechanisms, CAPA before and after login,
failures counted like PASS failures, and who can use SCRAM."""
import base64
import hashlib
import hmac
import os

from fastpop_harness import DaemonTest, main
from tls_fixture import TlsTest, capa as tls_capa, client_context, sasl_mechs, starttls

ALL = "auth_mechanisms = PLAIN LOGIN SCRAM-SHA-256\n"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


def capa(p):
    r = p.cmd("CAPA")
    assert r.startswith("+OK"), r
    return p.multiline().decode().split("\r\n")[:-1]


def scram_stored(password, salt=None, iterations=4096):
    """Dovecot's {SCRAM-SHA-256}iter,salt,StoredKey,ServerKey."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return "%d,%s,%s,%s" % (iterations, b64(salt), b64(hashlib.sha256(client_key).digest()),
                            b64(server_key))


class ScramClient:
    """The client side of RFC 5802 for SHA-256, as a test needs it."""

    def __init__(self, user, password, nonce=None, authzid=""):
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.nonce = nonce or b64(os.urandom(18))
        self.gs2 = "n,%s," % ("a=" + authzid if authzid else "")
        self.first_bare = "n=%s,r=%s" % (self.user, self.nonce)

    def first(self):
        return self.gs2 + self.first_bare

    def final(self, server_first, password=None):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), server_first
        salt, it = unb64(attrs["s"]), int(attrs["i"])
        pw = password.encode() if password is not None else self.password
        salted = hashlib.pbkdf2_hmac("sha256", pw, salt, it)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = "c=%s,r=%s" % (b64(self.gs2), attrs["r"])
        auth_msg = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.expect_v = "v=" + b64(hmac.new(server_key, auth_msg, "sha256").digest())
        return without_proof + ",p=" + b64(proof)


class SaslCase(DaemonTest):
    users = {"alice": "alice-secret", "bob": "bob secret"}
    extra_config = ALL

    def setUp(self):
        super().setUp()
        # carol is stored with SCRAM keys, dave with a crypt hash (no SCRAM possible).
        self.d.users["carol"] = "carol-pw"
        self.d.users["dave"] = "dave-pw"
        with open(self.d.passwd, "a") as f:
            f.write("carol:{SCRAM-SHA-256}%s::::::\n" % scram_stored("carol-pw"))
            f.write("dave:{SHA512-CRYPT}%s::::::\n" %
                    "$6$saltsalt$yjphRGLvGHNo7ev/GcALFIgdOsb9ac/iHNKlzczhgy0DMvdlJEU/GbEaCXBUyt9GvFFoUlKbUh4W0UkxhQB2r/")
        self.d.maildir("carol")
        self.d.maildir("dave")
        self.d.start()

    def greet(self):
        p = self.d.connect()
        self.assertTrue(p.line().startswith("+OK"))
        return p

    def scram_login(self, p, user, password, wrong=None, initial=True):
        cl = ScramClient(user, password)
        if initial:
            r = p.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
        else:
            self.assertEqual(p.cmd("AUTH SCRAM-SHA-256"), "+ ")
            r = p.cmd(b64(cl.first()))
        if not r.startswith("+ "):
            return r, cl
        server_first = unb64(r[2:]).decode()
        r = p.cmd(b64(cl.final(server_first, wrong)))
        if not r.startswith("+ "):
            return r, cl
        self.assertEqual(unb64(r[2:]).decode(), cl.expect_v)
        return p.cmd(""), cl


class Mechanisms(SaslCase):
    def test_capa_before_and_after_login(self):
        p = self.greet()
        caps = capa(p)
        self.assertIn("SASL PLAIN LOGIN SCRAM-SHA-256", caps)
        self.assertIn("USER", caps)
        self.assertTrue(p.cmd("AUTH PLAIN " + b64("\0alice\0alice-secret")).startswith("+OK"))
        caps = capa(p)
        self.assertFalse([c for c in caps if c.startswith("SASL")], caps)
        self.assertTrue(p.cmd("AUTH PLAIN").startswith("-ERR"))

    def test_bare_auth_lists_mechanisms(self):
        p = self.greet()
        self.assertTrue(p.cmd("AUTH").startswith("+OK"))
        self.assertEqual(p.multiline(), b"PLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n")

    def test_unknown_mechanism(self):
        p = self.greet()
        self.assertTrue(p.cmd("AUTH CRAM-MD5").startswith("-ERR"))
        self.assertTrue(p.cmd("AUTH GSSAPI " + b64("x")).startswith("-ERR"))
        self.assertEqual(p.cmd("NOOP"), "+OK")


class Plain(SaslCase):
    def test_initial_response(self):
        p = self.greet()
        self.assertTrue(p.cmd("AUTH PLAIN " + b64("\0alice\0alice-secret")).startswith("+OK"))
        self.assertTrue(p.cmd("STAT").startswith("+OK 0 0"))
        self.d.wait_log("login user=alice ip=127.0.0.1 mechanism=PLAIN")

    def test_continuation_and_spaces_and_authzid(self):
        p = self.greet()
        self.assertEqual(p.cmd("auth plain"), "+ ")
        self.assertTrue(p.cmd(b64("bob\0bob\0bob secret")).startswith("+OK"))

    def test_failures(self):
        p = self.greet()
        r = p.cmd("AUTH PLAIN " + b64("\0alice\0wrong"))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.d.wait_log("login failed user=alice ip=127.0.0.1 mechanism=PLAIN failures=1")
        # Another authzid than the user: no proxy authorization.
        r = p.cmd("AUTH PLAIN " + b64("bob\0alice\0alice-secret"))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        # The third failure (max_auth_failures = 3) closes the session.
        r = p.cmd("AUTH PLAIN " + b64("alice\0alice-secret"))
        self.assertTrue(r.startswith("-ERR"), r)
        self.assertTrue(p.line().startswith("-ERR [AUTH] Too many"))
        self.assertTrue(p.closed_by_server())

    def test_cancel_and_bad_base64(self):
        p = self.greet()
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        self.assertTrue(p.cmd("*").startswith("-ERR"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        self.assertTrue(p.cmd("not base64!").startswith("-ERR"))
        self.assertTrue(p.cmd("AUTH PLAIN ab=c").startswith("-ERR"))
        # "=" is the empty initial response: an empty PLAIN message fails.
        # That is the third failure (max_auth_failures = 3): the session ends.
        self.assertTrue(p.cmd("AUTH PLAIN =").startswith("-ERR [AUTH]"))
        self.assertTrue(p.line().startswith("-ERR [AUTH] Too many"))
        self.assertTrue(p.closed_by_server())
        self.d.wait_log("login failed user=- ip=127.0.0.1 mechanism=PLAIN failures=3")

    def test_long_response_line(self):
        # Longer than a command may be, within what a SASL response may be.
        p = self.greet()
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        r = p.cmd(b64("\0alice\0" + "x" * 1000))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.assertEqual(p.cmd("AUTH PLAIN"), "+ ")
        r = p.cmd("A" * 5000)
        self.assertTrue(r.startswith("-ERR"), r)


class Login(SaslCase):
    def test_login(self):
        p = self.greet()
        self.assertEqual(p.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6")
        self.assertEqual(p.cmd(b64("alice")), "+ UGFzc3dvcmQ6")
        self.assertTrue(p.cmd(b64("alice-secret")).startswith("+OK"))
        self.d.wait_log("login user=alice ip=127.0.0.1 mechanism=LOGIN")

    def test_login_initial_response_and_wrong(self):
        p = self.greet()
        self.assertEqual(p.cmd("AUTH LOGIN " + b64("bob")), "+ UGFzc3dvcmQ6")
        self.assertTrue(p.cmd(b64("nope")).startswith("-ERR [AUTH]"))
        self.d.wait_log("login failed user=bob ip=127.0.0.1 mechanism=LOGIN failures=1")
        self.assertEqual(p.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6")
        self.assertTrue(p.cmd("*").startswith("-ERR"))


class Scram(SaslCase):
    def test_stored_scram_keys(self):
        p = self.greet()
        r, _ = self.scram_login(p, "carol", "carol-pw")
        self.assertTrue(r.startswith("+OK"), r)
        self.d.wait_log("login user=carol ip=127.0.0.1 mechanism=SCRAM-SHA-256")

    def test_plain_stored_user_without_initial_response(self):
        p = self.greet()
        r, _ = self.scram_login(p, "alice", "alice-secret", initial=False)
        self.assertTrue(r.startswith("+OK"), r)

    def test_wrong_password_unknown_user_and_crypt_user(self):
        for user, pw in (("carol", "bad"), ("nobody", "x"), ("dave", "dave-pw")):
            p = self.greet()
            r, _ = self.scram_login(p, user, pw)
            self.assertTrue(r.startswith("-ERR [AUTH]"), (user, r))
            p.close()
        self.d.wait_log("login failed user=carol ip=127.0.0.1 mechanism=SCRAM-SHA-256")
        self.d.wait_log("mechanism=SCRAM-SHA-256 reason=no-scram-secret")
        self.d.wait_log("mechanism=SCRAM-SHA-256 reason=unknown-user")

    def test_cancel_after_server_first_and_bad_client_first(self):
        p = self.greet()
        cl = ScramClient("carol", "carol-pw")
        r = p.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
        self.assertTrue(r.startswith("+ "), r)
        self.assertTrue(p.cmd("*").startswith("-ERR"))
        self.assertEqual(p.cmd("NOOP"), "+OK")
        # Channel binding asked for: refused.
        r = p.cmd("AUTH SCRAM-SHA-256 " + b64("p=tls-unique,,n=carol,r=abc"))
        self.assertTrue(r.startswith("-ERR"), r)
        # A tampered nonce in the final message.
        p2 = self.greet()
        cl = ScramClient("carol", "carol-pw")
        r = p2.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
        server_first = unb64(r[2:]).decode()
        final = cl.final(server_first).replace("r=" + cl.nonce, "r=X" + cl.nonce)
        self.assertTrue(p2.cmd(b64(final)).startswith("-ERR"))

    def test_scram_not_offered_without_tls_when_plaintext_refused(self):
        self.d.stop()
        self.d.write_config(self.d.config_text().replace("plaintext_auth = yes",
                                                         "plaintext_auth = no"))
        self.d.start()
        p = self.greet()
        caps = capa(p)
        # No TLS here (no certificate): nothing is offered, SCRAM included (issue 12, item 9).
        self.assertFalse([c for c in caps if c.startswith("SASL")], caps)
        self.assertNotIn("USER", caps)
        self.assertEqual(p.cmd("AUTH"), "+OK Supported mechanisms follow")
        self.assertEqual(p.multiline(), b"")
        self.assertTrue(p.cmd("AUTH PLAIN " + b64("\0alice\0alice-secret")).startswith("-ERR"))
        r = p.cmd("AUTH SCRAM-SHA-256 " + b64(ScramClient("carol", "carol-pw").first()))
        self.assertTrue(r.startswith("-ERR [AUTH]"), r)
        self.assertNotIn("login user=carol", self.d.log())


class ScramAfterStls(TlsTest):
    """With plaintext_auth = no, SCRAM is offered and works once STLS is done."""
    plaintext_auth = None
    listeners = {}
    tls_extra = ALL

    def test_scram_offered_after_stls_only(self):
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.line().startswith("+OK"))
        self.assertEqual(sasl_mechs(tls_capa(p)), [])
        starttls(p, client_context(self.ca))
        self.assertEqual(sasl_mechs(tls_capa(p)), ["PLAIN", "LOGIN", "SCRAM-SHA-256"])
        cl = ScramClient("alice", "alice-secret")
        r = p.cmd("AUTH SCRAM-SHA-256 " + b64(cl.first()))
        self.assertTrue(r.startswith("+ "), r)
        r = p.cmd(b64(cl.final(unb64(r[2:]).decode())))
        self.assertTrue(r.startswith("+ "), r)
        self.assertEqual(unb64(r[2:]).decode(), cl.expect_v)
        self.assertTrue(p.cmd("").startswith("+OK"))


class DefaultMechanisms(DaemonTest):
    def test_default_is_plain_and_login(self):
        self.d.start()
        p = self.d.connect()
        p.line()
        self.assertIn("SASL PLAIN LOGIN", capa(p))
        self.assertTrue(p.cmd("AUTH SCRAM-SHA-256").startswith("-ERR"))


if __name__ == "__main__":
    main()

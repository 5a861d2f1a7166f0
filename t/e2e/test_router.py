"""Several fastpop hosts behind nginx's mail proxy (issue 15), all real: nginx
with its mail module answers POP3 and asks fastpop-router (auth_http), which
checks the password through its auth helper against slapd and routes by the
user's mailHost over three backends (127.0.1.1-3, own state directories, one
shared maildir tree, mailbox_lock = shared, PROXY protocol from nginx).

Checked: passwords in the clear reach a backend only through the proxy
(plaintext_via_proxy: direct USER/PASS/AUTH PLAIN get -ERR [AUTH]); users land
on their mailHost and the backend logs the client's
address, not nginx's (poplib plain, POP3S and STLS, curl over both); a wrong
password is refused at the proxy; a second session on another backend gets
[IN-USE]; a drained backend's new users go elsewhere while its logged-in
session finishes, and they come back after undrain; a mailHost change in
LDAP takes effect within router_cache_ttl; a SIGKILLed backend's users move
within seconds.
"""
import os
import poplib
import shutil
import signal
import subprocess
import time

from fastpop_harness import BIN, children_of, main
from farm_fixture import (CACHE_TTL, CLIENT_IP, MOVE_DEADLINE, USERS, ClientPOP3,
                          ClientPOP3_SSL, Farm)
from tls_fixture import client_context


class RouterFarm(Farm):
    def test_0_plaintext_passwords_only_through_the_proxy(self):
        """The backends have plaintext_auth = no and no certificate; their proxy
        listener has plaintext_via_proxy. Straight to a backend (its direct
        listener on 127.0.0.1) USER, PASS and AUTH PLAIN get -ERR [AUTH] and
        CAPA offers no USER; the same login with a PROXY header from the trusted
        proxy address is accepted, and logged with the client's address."""
        d = self.backends["pop1"]
        direct = d.connect()
        try:
            self.assertTrue(direct.line().startswith("+OK"))
            self.assertTrue(direct.cmd("CAPA").startswith("+OK"))
            self.assertNotIn(b"\r\nUSER\r\n", b"\r\n" + direct.multiline())
            reply = direct.cmd("USER amy")
            self.assertTrue(reply.startswith("-ERR [AUTH] "), reply)
            reply = direct.cmd("PASS amy-pass")
            self.assertTrue(reply.startswith("-ERR [AUTH] "), reply)
            reply = direct.cmd("AUTH PLAIN AGFteQBhbXktcGFzcw==")   # \0amy\0amy-pass
            self.assertTrue(reply.startswith("-ERR [AUTH] "), reply)
        finally:
            direct.close()
        self.assertNotIn("login user=amy ip=127.0.0.1 ", d.log())
        via = self.proxied("pop1", client_ip="127.0.0.10")
        try:
            self.assertTrue(via.cmd("USER amy").startswith("+OK"))
            reply = via.cmd("PASS amy-pass")
            self.assertTrue(reply.startswith("+OK"), reply)
            self.assertTrue(via.cmd("QUIT").startswith("+OK"))
        finally:
            via.close()
        self.assertIn("login user=amy ip=127.0.0.10 ", d.log())

    def test_1_users_land_on_their_mailhost_with_the_client_address(self):
        self.router_host.deliver("amy", "Subject: hi\r\n\r\nbody\r\n")
        p = ClientPOP3("127.0.0.1", self.nginx.port, timeout=10)
        p.user("amy")
        p.pass_("amy-pass")
        self.assertEqual(p.stat()[0], 1)   # the shared maildir, read on pop1
        p.quit()
        for user in ("amy", "bert", "cleo", "dora"):
            self.assertEqual(self._try_login(user), USERS[user][1], user)
        # The PROXY header gave the backend the client's address; nginx's never logged in.
        log = self.backends["pop1"].log()
        self.assertIn("login user=amy ip=%s " % CLIENT_IP, log)
        self.assertNotIn("login user=amy ip=127.0.0.1 ", log)
        # A user without mailHost goes where rendezvous hashing says, the same every time.
        first = self._try_login("ezra")
        self.assertIn(first, self.backends)
        self.assertEqual(self._try_login("ezra"), first)

    def test_1_tls_clients_through_nginx(self):
        """nginx ends TLS (995 and STLS); poplib and curl land on the user's mailHost."""
        ctx = client_context()
        p = ClientPOP3_SSL("127.0.0.1", self.nginx.tls_port, context=ctx, timeout=10)
        p.user("bert")
        p.pass_("bert-pass")
        p.stat()
        p.quit()
        p = ClientPOP3("127.0.0.1", self.nginx.stls_port, timeout=10)
        p.stls(ctx)
        p.user("bert")
        p.pass_("bert-pass")
        p.stat()
        p.quit()
        self.assertGreaterEqual(self.backends["pop2"].log().count(
            "login user=bert ip=%s " % CLIENT_IP), 2)
        if shutil.which("curl") is None:
            return
        before = self.backends["pop3"].log().count("login user=cleo ip=%s " % CLIENT_IP)
        for url, extra in (("pop3s://127.0.0.1:%d/" % self.nginx.tls_port, []),
                           ("pop3://127.0.0.1:%d/" % self.nginx.stls_port, ["--ssl-reqd"])):
            r = subprocess.run(["curl", "-sS", "--max-time", "30", "--interface", CLIENT_IP,
                                "-k", "-u", "cleo:cleo-pass"] + extra + [url],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr + self.nginx.read_log())
        self.assertEqual(self.backends["pop3"].log().count(
            "login user=cleo ip=%s " % CLIENT_IP), before + 2)

    def test_2_wrong_password_is_refused_at_the_proxy(self):
        before = self._logins()
        p = ClientPOP3("127.0.0.1", self.nginx.port, timeout=15)
        try:
            p.user("amy")
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_("wrong")
            self.assertIn(b"[AUTH]", cm.exception.args[0])
        finally:
            p.close()
        self.assertEqual(self._logins(), before)   # no backend saw it
        self.assertIn("auth failed user=amy ip=%s " % CLIENT_IP, self.router_host.log())

    def test_3_a_mailbox_open_on_one_host_is_in_use_on_another(self):
        p = ClientPOP3("127.0.0.1", self.nginx.port, timeout=10)
        try:
            p.user("amy")
            p.pass_("amy-pass")    # open on pop1
            other = self.proxied("pop2")   # a stale route, as nginx would open it
            try:
                self.assertTrue(other.cmd("USER amy").startswith("+OK"))
                reply = other.cmd("PASS amy-pass")
                self.assertTrue(reply.startswith("-ERR [IN-USE]"), reply)
            finally:
                other.sock.close()
            p.quit()
        finally:
            p.close()

    def test_4_drained_backend_gets_no_new_users_until_undrain(self):
        d = self.backends["pop2"]
        popctl = [os.path.join(BIN, "popctl"), "-c", d.conf, "-s",
                  os.path.join(d.run_dir, "control.sock")]
        self.router_host.deliver("bert", "Subject: keep\r\n\r\nbody\r\n")
        session = ClientPOP3("127.0.0.1", self.nginx.port, timeout=10)   # open on pop2
        session.user("bert")
        session.pass_("bert-pass")
        r = subprocess.run(popctl + ["drain", "--no-wait"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The session that was logged in is served to its QUIT, and its DELE is applied.
        try:
            count = session.stat()[0]
            self.assertGreaterEqual(count, 1)
            session.dele(count)
            self.assertTrue(session.quit().startswith(b"+OK"))
        finally:
            session.close()
        self.assertEqual(len(self.router_host.messages("bert")), count - 1)
        try:
            self.assertNotEqual(self.landed("bert", avoid="pop2"), "pop2")
        finally:
            r = subprocess.run(popctl + ["undrain"], capture_output=True, text=True,
                               timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.landed("bert", want="pop2"), "pop2")

    def test_5_mailhost_change_takes_effect_within_the_cache_ttl(self):
        # Past the TTL, then one login: the router has just asked the directory.
        time.sleep(CACHE_TTL + 0.5)
        self.assertEqual(self._try_login("dora"), "pop1")
        looked_up = time.monotonic()
        self.slapd.modify("dn: uid=dora,ou=people,dc=example,dc=test\nchangetype: modify\n"
                          "replace: mailHost\nmailHost: pop2\n")
        first = self._try_login("dora")
        if time.monotonic() - looked_up < CACHE_TTL - 1:
            # Still within the TTL: the remembered host, checked by the helper's cache.
            self.assertEqual(first, "pop1")
        self.assertEqual(self.landed("dora", want="pop2"), "pop2")

    def test_6_sigkilled_backend_users_move_within_seconds(self):
        d = self.backends["pop3"]
        pids = [d.pid] + children_of(d.pid)
        start = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        d.proc.wait(10)
        moved = self.landed("cleo", avoid="pop3")
        self.assertIn(moved, ("pop1", "pop2"))
        self.assertLess(time.monotonic() - start, MOVE_DEADLINE)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the seed corpora of t/fuzz (run from anywhere; rewrites seed-* files
only, never the inputs fuzzing found, which are named by their hash).

Seeds are small valid and nearly-valid inputs of each format, so the fuzzers
start inside the grammar instead of guessing its first bytes.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(corpus, seeds):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    for i, data in enumerate(seeds):
        if isinstance(data, str):
            data = data.encode("latin-1")
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(data)


SIG2 = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, addr, tlvs=b""):
    body = addr + tlvs
    return SIG2 + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


v4addr = bytes([192, 0, 2, 1, 127, 0, 0, 1]) + struct.pack(">HH", 50000, 110)
v6addr = bytes(15) + b"\x01" + bytes(15) + b"\x01" + struct.pack(">HH", 50000, 110)
mapped = bytes(10) + b"\xff\xff" + bytes([198, 51, 100, 7]) + bytes(15) + b"\x01" + \
    struct.pack(">HH", 50000, 110)
ssl_tlv = b"\x20" + struct.pack(">H", 5) + b"\x01" + b"\x00\x00\x00\x00"
write("proxy", [
    "PROXY TCP4 192.0.2.1 127.0.0.1 50000 110\r\nUSER a\r\n",
    "PROXY TCP6 2001:db8::1 ::1 50000 110\r\n",
    "PROXY TCP6 ::ffff:192.0.2.9 ::1 1 2\r\n",
    "PROXY UNKNOWN\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n",
    v2(1, 0x11, v4addr) + b"USER a\r\n",
    v2(1, 0x21, v6addr),
    v2(1, 0x21, mapped),
    v2(1, 0x11, v4addr, ssl_tlv),
    v2(0, 0x00, b""),
    v2(1, 0x31, bytes(216)),
])

write("maildir_name", [
    "1700000000.M1P2.host,S=1234,W=1250:2,S",
    "1700000000.M1P2.host:2,RS\xff1700000000.M1P2.host:2,",
    "a:b:c\xffa",
    "x" * 80 + "\xff" + "x" * 81,
    "sp ace\x01ctl\xffsp:20ace",
    "1.2.3:2,FRST,extra",
    "\xff",
    ".hidden:2,",
])

msgs = [
    b"Subject: hi\r\n\r\nbody\r\n",
    b"Subject: lf\n\nline\n.dot\n..two\nno end",
    b"A: b\r\n\r\n.\r\nend\r",
    b"",
    b"\r\r\n\n.\n",
    b"H: 1\nH: 2\n\n1\n2\n3\n4\n5\n6\n7\n8\n9\n",
]
write("stream", [bytes([c, h, t, f]) + m for (c, h, t, f), m in
                 zip([(0, 0, 0, 0), (3, 7, 2, 1), (1, 1, 0, 0), (63, 95, 7, 1),
                      (5, 2, 1, 0), (2, 3, 3, 0)], msgs)])

write("cidr", ["10.0.0.0/8 192.168.1.0/24", "2001:db8::/32 ::1/128", "127.0.0.1",
               "::ffff:10.0.0.0/104", "0.0.0.0/0 ::/0", "300.1.1.1/8", "1.2.3.4/33",
               "fe80::1%eth0/64", "10.0.0.0/8,  172.16.0.0/12"])

write("getline", [b"\x05USER alice\r\nPASS secret\r\nQUIT\r\n",
                  b"\x01" + b"A" * 300 + b"\r\nNOOP\r\n",
                  b"\x10bare\nlf\ncr\r\r\n\x00nul\r\n",
                  b"\x1f" + b"x" * 1000])


def ipc(t, i, fields):
    out = struct.pack("=II", t, i)
    for f in fields:
        if isinstance(f, int):
            out += struct.pack("=I", f)
        else:
            out += struct.pack("=H", len(f)) + f
    return out


# layout byte: low bits = field count - 1, bit (i+3) = field i is a string
write("ipc", [bytes([0x3 | (0b0110 << 3)]) + ipc(1, 7, [0, b"alice", b"/var/mail/alice", 5]),
              bytes([0x0]) + ipc(2, 1, [3]),
              bytes([0x1 | (0b11 << 3)]) + ipc(3, 9, [b"", b"x" * 299]),
              bytes([0x5]) + b"\x01\x00"])

write("ldap_filter", ["alice", "alice@example.org", "*)(uid=*", "\\", "a\x00b",
                      "\xc3\xa9l\xc3\xa8ve@example.org", "(", "@@@", "%u%n"])

write("template", ["alice@example.org", "../../etc", "a/../b@c", "@..", "x@.",
                   ".hidden", "a%b", "user\x01name", "/abs", "..@..", "ok@example.org/.."])

write("legacy", [
    b"\x00/2 5 1700000000\n1700000000.M1P1.h 1:1\n1700000001.M2P1.h 2:1\n",
    b"\x00/3 3 1700000000\n1700000000.M1P1.h 1234 1:1\n",
    b"\x00name.only\nsecond:2,S\n",
    b"\x01" + b"3 V1700000000 N5 Gabc\n1 :1700000000.M1P1.h\n2 Pdup W10 :1700000001.M2P1.h\n"
    b"3 Pdup O1 :1700000002.M3P1.h\n",
    b"\x011 1700000000 4\n1 1700000000.M1P1.h:2,S\n2 1700000001.M2P1.h\n",
    b"\x013 V1 N2\n1 P:bad\\x01 :n1\n",
])

write("passwd", [
    "alice:{PLAIN}secret::::::\nbob:{SHA512-CRYPT}$6$salt$hash:1000:1000::/home/bob::userdb_mail=maildir:/m/bob\n",
    "# comment\n\nalice:x\nalice:y\n:empty\nnocolon\r\n",
    "u:{SCRAM-SHA-256}4096,c2FsdA==,a2V5,a2V5::::::\n",
])

write("scheme", [
    "{PLAIN}secret\x00secret", "{PLAIN}secret\x00wrong",
    "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\x00secret",
    "{SSHA256}AAAA\x00x", "{SHA512-CRYPT}$6$abc$def\x00pw",
    "$1$salt$hash\x00pw", "{MD5-CRYPT}$1$s$\x00", "{CRYPT}ab01234567890\x00pw",
    "{UNKNOWN}x\x00y", "noscheme\x00x", "{SSHA512}\x00", "{SHA256}!!!!\x00a",
])

write("control", ["alice", "ip:10.0.0.0/8", "ip:2001:db8::/32 127.0.0.1", "all", "*",
                  "", "ip:", "a" * 300, "ip:::ffff:192.0.2.1"])

sample = open(os.path.join(HERE, "..", "..", "etc", "fastpop.conf"), encoding="latin-1").read()
write("config", [
    sample,
    "listen = 127.0.0.1:110\nworkers = 2\n",
    "listen = 127.0.0.1:110 tls proxy_protocol\nlisten = [::1]:995 tls\ntls_cert = /x\n"
    "tls_key = /y\nproxy_trusted = 10.0.0.0/8\n",
    "listen = 127.0.0.1:110\nidle_timeout = 10m\nmaildir = /var/mail/%d/%n\n"
    "passdb = ldap\nldap_uri = ldap://127.0.0.1\n",
    "listen = 127.0.0.1:110\nlisten = 127.0.0.1:110\nworkers = 0\n",
    "listen=127.0.0.1:1\n# c\n  key  =  value  # trailing\n",
])

# SCRAM: client-first NUL client-final (the harness makes the server-first).
write("scram", [
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO\x00c=biws,r=rOprNGfwEbeRWgbNEkqOSERVERNONCE,p=AAAA",
    "n,a=admin,n=us=2Cer=3D,r=abc\x00c=bixhPWFkbWluLA==,r=abcSERVERNONCE,p=" + "A" * 43 + "=",
    "y,,n=u,r=x\x00",
    "p=tls-unique,,n=u,r=x\x00",
    "n,,m=ext,n=u,r=x\x00",
    "n,,n=,r=\x00c=,r=,p=",
])

# SASL: odd first byte decodes base64, even encodes and parses PLAIN.
write("sasl", [
    "\x01AGFsaWNlAHNlY3JldA==", "\x01dXNlcg==", "\x01=", "\x01QR==", "\x01AAAA",
    "\x00\x00alice\x00secret", "\x00admin\x00alice\x00pw", "\x00\x00\x00", "\x00a\x00b\x00c\x00d",
])

# index_record seeds are encodings index_encode() wrote (a mode-1 run of the
# harness makes the same); this script leaves that corpus alone.

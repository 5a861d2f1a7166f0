#!/usr/bin/env python3
"""Write the benchmark corpus: maildirs and a passwd file, deterministic from --seed.

Layout (what compare.sh and the smoke test use):
  DIR/passwd                          userNNNN:{PLAIN}PASSWORD:::::: (one line per user)
  DIR/mail/userNNNN/Maildir/{cur,new,tmp}
  DIR/mail/bigbox/Maildir/...         with --bigbox N: one mailbox of N small messages

Users user0001..user{--users} get mail; the next --drain-users users get the
same kind of mail (drain deletes it; --refill FIRST:COUNT writes those users
again, identical); the next --idle-users users get one small message each;
the next --delivery-users users get an empty maildir (delivery.py fills them).
The bigbox and idle messages are small (1.5 KB to 6 KB).
Names are printf("user%04d"), so user10000 and up have five digits.

Messages: sizes log-uniform between 2 KB and 100 KB, and --big-fraction of
them between 1 MB and 4 MB; LF line ends as MDAs write them; some lines
start with "." and some are a lone "." (both need dot-stuffing on the
wire). File names are Dovecot-LDA style, with ,S= (file size) and ,W= (size
with CRLF line ends), so neither server has to read a file to size it
(--plain-names leaves them out, as Postfix's virtual(8) does). About a fifth
of each mailbox is in new/, the rest in cur/ marked seen.

The passwd file stores {PLAIN} passwords: this is a benchmark corpus, not an
installation; both servers read the same file, so the scheme costs them the
same. Standard library only.
"""
import argparse
import bisect
import math
import os
import random
import shutil
import sys

BASE_TIME = 1700000000


def make_pool(seed, size=8 << 20):
    """A block of text lines (LF), some starting with '.', some a lone '.'."""
    rng = random.Random("pool:%d" % seed)
    words = ("the of and to in is was for on that with as by at from this have not are "
             "mail message server client pop3 maildir index session delivery account "
             "quota password folder report invoice meeting tomorrow regards").split()
    out, starts, n = [], [], 0
    while n < size:
        r = rng.random()
        if r < 0.02:
            line = "."
        elif r < 0.05:
            line = "." + " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        elif r < 0.10:
            line = ""
        else:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        starts.append(n)
        data = line + "\n"
        out.append(data)
        n += len(data)
    return "".join(out).encode(), starts


class Writer:
    def __init__(self, args):
        self.args = args
        self.pool, self.starts = make_pool(args.seed)

    def body(self, rng, size):
        """About size bytes of whole lines from the pool."""
        half = len(self.pool) // 2
        first = bisect.bisect_left(self.starts, rng.randrange(half))
        start = self.starts[first]
        endi = bisect.bisect_left(self.starts, start + size)
        end = self.starts[endi] if endi < len(self.starts) else len(self.pool)
        return self.pool[start:end]

    def message(self, rng, user, i, size):
        head = ("Return-Path: <sender%d@example.org>\n"
                "From: Sender %d <sender%d@example.org>\n"
                "To: %s@example.net\n"
                "Subject: benchmark message %d for %s\n"
                "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
                "Message-ID: <%d.%s@bench.example.org>\n"
                "\n" % (i, i, i, user, i, user, i, user)).encode()
        return head + self.body(rng, max(size - len(head), 1))

    def size(self, rng, tiny=False):
        a = self.args
        if tiny:
            return int(1536 * math.exp(rng.uniform(0, math.log(4))))
        if rng.random() < a.big_fraction:
            return rng.randint(1 << 20, 4 << 20)
        return int(2048 * math.exp(rng.uniform(0, math.log(50))))

    def maildir(self, user, count, tiny=False):
        root = os.path.join(self.args.dir, "mail", user, "Maildir")
        shutil.rmtree(os.path.join(self.args.dir, "mail", user), ignore_errors=True)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, sub))
        rng = random.Random("%d:%s" % (self.args.seed, user))
        for i in range(count):
            data = self.message(rng, user, i, self.size(rng, tiny))
            unique = "%d.M%06dP%d.bench" % (BASE_TIME + i * 7, i, 4242)
            if not self.args.plain_names:
                unique += ",S=%d,W=%d" % (len(data), len(data) + data.count(b"\n"))
            if rng.random() < 0.2:
                path = os.path.join(root, "new", unique)
            else:
                path = os.path.join(root, "cur", unique + ":2,S")
            with open(path, "wb") as f:
                f.write(data)


def user_name(n):
    return "user%04d" % n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--users", type=int, default=100, help="users with mail")
    p.add_argument("--drain-users", type=int, default=0)
    p.add_argument("--idle-users", type=int, default=0)
    p.add_argument("--delivery-users", type=int, default=0, help="users with empty maildirs")
    p.add_argument("--msgs-min", type=int, default=5)
    p.add_argument("--msgs-max", type=int, default=20)
    p.add_argument("--big-fraction", type=float, default=0.05)
    p.add_argument("--bigbox", type=int, default=0, help="messages in the bigbox mailbox")
    p.add_argument("--password", default="benchpw")
    p.add_argument("--plain-names", action="store_true")
    p.add_argument("--refill", metavar="FIRST:COUNT",
                   help="only write users FIRST..FIRST+COUNT-1 again (after a drain)")
    a = p.parse_args()
    w = Writer(a)

    def mail_user(n):
        rng = random.Random("%d:count:%d" % (a.seed, n))
        w.maildir(user_name(n), rng.randint(a.msgs_min, a.msgs_max))

    if a.refill:
        first, count = (int(x) for x in a.refill.split(":"))
        for n in range(first, first + count):
            mail_user(n)
        return 0

    os.makedirs(os.path.join(a.dir, "mail"), exist_ok=True)
    names = []
    for n in range(1, a.users + a.drain_users + 1):
        mail_user(n)
        names.append(user_name(n))
    for n in range(a.users + a.drain_users + 1, a.users + a.drain_users + a.idle_users + 1):
        w.maildir(user_name(n), 1, tiny=True)
        names.append(user_name(n))
    first = a.users + a.drain_users + a.idle_users + 1
    for n in range(first, first + a.delivery_users):
        w.maildir(user_name(n), 0)
        names.append(user_name(n))
    if a.bigbox:
        w.maildir("bigbox", a.bigbox, tiny=True)
        names.append("bigbox")
    with open(os.path.join(a.dir, "passwd"), "w") as f:
        for name in names:
            f.write("%s:{PLAIN}%s::::::\n" % (name, a.password))
    print("mkcorpus: %d users in %s (seed %d)" % (len(names), a.dir, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

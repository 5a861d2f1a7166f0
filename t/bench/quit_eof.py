#!/usr/bin/env python3
"""How long a client that waits for the server's close after QUIT waits
(issue 17, part 1): 200 sessions (USER, PASS, QUIT, then read to EOF) against
a fresh fastpopd on loopback; prints the median, p99 and max from QUIT's reply
to EOF.

  FASTPOP_BIN=build/bin python3 t/bench/quit_eof.py

Before quit_linger defaulted to 0s this was 2.0 s for every session.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from fastpop_harness import Daemon  # noqa: E402


def main():
    d = Daemon(workers=1)
    d.start()
    waits = []
    try:
        for _ in range(200):
            p = d.connect()
            p.line()
            p.cmd("USER alice")
            p.cmd("PASS alice-secret")
            p.send("QUIT\r\n")
            p.line()
            start = time.monotonic()
            while p.sock.recv(4096):
                pass
            waits.append(time.monotonic() - start)
            p.close()
    finally:
        d.cleanup()
    waits.sort()
    print("QUIT reply -> EOF, 200 sessions: median %.3f ms, p99 %.3f ms, max %.3f ms"
          % (waits[100] * 1000, waits[198] * 1000, waits[-1] * 1000))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""popload's `idle` scenario over implicit TLS (standard library only).

  tlsidle.py --port P --connections N --first-user K [--password PW] [--hold T]
             [--concurrency C] [--sources S] [--timeout T] [--server-pid PID] [--quiet]

Opens N TLS connections to 127.0.0.1:P (a `listen = ... tls` port), at most C of
them handshaking and logging in at once, logs each in as user K, K+1, ... with
USER/PASS, holds them all T seconds, then QUITs them. With --server-pid it reads
/proc/PID/smaps_rollup of that process and all its descendants before the first
connection and while all are held (as popload does for `idle`), and the server's
CPU (utime+stime+cutime+cstime) over the run. One process, one asyncio loop: N is
bounded by this process's RLIMIT_NOFILE (raised to the hard limit). Loopback only;
the certificate is not checked (a throwaway self-signed one). Errors are counted by
kind and never retried. Prints an optional summary and always one JSON line last,
with popload's idle fields.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import resource
import ssl
import sys
import time


def tree(root):
    parent = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, i = [root], 0
    while i < len(out):
        out += [p for p, pp in parent.items() if pp == out[i]]
        i += 1
    return out


def memory_kib(root):
    """(rss, pss, processes) summed over the tree, from smaps_rollup."""
    rss = pss = n = 0
    for p in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return rss, pss, n


def cpu_seconds(root):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


ERR_KINDS = ("connect", "closed", "err_reply", "protocol", "verify", "timeout")


class Run:
    def __init__(self, a):
        self.a = a
        self.errors = dict.fromkeys(ERR_KINDS, 0)
        self.established = 0
        self.release = asyncio.Event()
        self.gate = asyncio.Semaphore(a.concurrency)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.version = self.cipher = None
        self.lat = []

    async def line(self, reader):
        data = await asyncio.wait_for(reader.readline(), self.a.timeout)
        if not data:
            raise ConnectionResetError("closed")
        if not data.endswith(b"\r\n"):
            raise ValueError("no CRLF")
        return data

    async def session(self, i):
        a = self.a
        user = "user%04d" % (a.first_user + i)
        src = str(ipaddress.ip_address("127.0.0.2") + (i % a.sources))
        writer = None
        try:
            async with self.gate:
                t0 = time.monotonic()
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(
                        "127.0.0.1", a.port, ssl=self.ctx, local_addr=(src, 0),
                        limit=4096), a.timeout)
                except asyncio.TimeoutError:
                    self.errors["timeout"] += 1
                    return
                except (OSError, ssl.SSLError):
                    self.errors["connect"] += 1
                    return
                for cmd in (None, b"USER " + user.encode(), b"PASS " + a.password.encode()):
                    if cmd is not None:
                        writer.write(cmd + b"\r\n")
                    reply = await self.line(reader)
                    if not reply.startswith(b"+OK"):
                        self.errors["err_reply" if reply.startswith(b"-ERR") else "protocol"] += 1
                        if a.verbose_errors:
                            print("tlsidle: %s: %r" % (user, reply), file=sys.stderr)
                        return
                self.established += 1
                self.lat.append(time.monotonic() - t0)
                if self.version is None:
                    obj = writer.get_extra_info("ssl_object")
                    self.version, self.cipher = obj.version(), obj.cipher()[0]
            await self.release.wait()
            writer.write(b"QUIT\r\n")
            reply = await self.line(reader)
            if not reply.startswith(b"+OK"):
                self.errors["protocol"] += 1
        except asyncio.TimeoutError:
            self.errors["timeout"] += 1
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            self.errors["closed"] += 1
        except ValueError:
            self.errors["protocol"] += 1
        finally:
            if writer is not None:
                writer.close()

    async def main(self):
        a = self.a
        mem0 = memory_kib(a.server_pid) if a.server_pid else None
        cpu0 = cpu_seconds(a.server_pid) if a.server_pid else 0
        t0 = time.monotonic()
        tasks = [asyncio.create_task(self.session(i)) for i in range(a.connections)]
        deadline = t0 + a.duration
        # Every session has either logged in (and waits for release) or failed.
        while time.monotonic() < deadline:
            done = sum(1 for t in tasks if t.done())
            if self.established + done >= a.connections:
                break
            await asyncio.sleep(0.2)
        login_s = time.monotonic() - t0
        await asyncio.sleep(a.hold)
        mem = memory_kib(a.server_pid) if a.server_pid else None
        held = self.established
        self.release.set()
        await asyncio.wait(tasks, timeout=a.timeout + 30)
        unfinished = sum(1 for t in tasks if not t.done())
        for t in tasks:
            t.cancel()
        cpu = cpu_seconds(a.server_pid) - cpu0 if a.server_pid else 0
        el = time.monotonic() - t0
        errors = sum(self.errors.values())
        lat = sorted(self.lat) or [0]
        q = lambda f: 1000 * lat[min(len(lat) - 1, int(f * len(lat)))]
        conns = held or 1
        r = {"scenario": "idle", "transport": "tls", "tls_version": self.version,
             "tls_cipher": self.cipher, "procs": 1, "concurrency": a.concurrency,
             "elapsed_s": round(el, 3), "login_phase_s": round(login_s, 3),
             "connections": a.connections, "established": held, "sessions": held,
             "errors": errors, "unfinished": unfinished,
             "lat_p50_ms": round(q(0.5), 3), "lat_p99_ms": round(q(0.99), 3),
             "lat_max_ms": round(1000 * lat[-1], 3)}
        for k, v in self.errors.items():
            r["err_" + k] = v
        if a.server_pid:
            r.update({"server_cpu_s": round(cpu, 3),
                      "server_cpu_ms_per_session": round(cpu * 1000 / conns, 4)})
        if mem0 and mem:
            r.update({"rss_kb_base": mem0[0], "pss_kb_base": mem0[1], "rss_kb": mem[0],
                      "pss_kb": mem[1], "rss_kb_per_conn": round((mem[0] - mem0[0]) / conns, 3),
                      "pss_kb_per_conn": round((mem[1] - mem0[1]) / conns, 3),
                      "mem_procs": mem[2]})
        if not a.quiet:
            print("tlsidle: %d of %d TLS connections (%s, %s) logged in and held, %d errors %s"
                  % (held, a.connections, self.version, self.cipher, errors,
                     {k: v for k, v in self.errors.items() if v}))
            if "pss_kb_per_conn" in r:
                print("  server memory: RSS %.1f MB, PSS %.1f MB in %d processes; over the "
                      "baseline %.2f KB RSS, %.2f KB PSS per connection"
                      % (mem[0] / 1024, mem[1] / 1024, mem[2], r["rss_kb_per_conn"],
                         r["pss_kb_per_conn"]))
        print(json.dumps(r, sort_keys=True))
        return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--first-user", type=int, default=1)
    p.add_argument("--password", default="benchpw")
    p.add_argument("--hold", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--sources", type=int, default=1)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--duration", type=float, default=300,
                   help="bound on the login phase, seconds")
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose-errors", action="store_true")
    a = p.parse_args()
    if a.host != "127.0.0.1":
        print("tlsidle: loopback only (127.0.0.1)", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and a.connections > hard - 64:
        print("tlsidle: %d connections need more than RLIMIT_NOFILE %d allows in one process"
              % (a.connections, hard), file=sys.stderr)
        return 2
    r = asyncio.run(Run(a).main())
    return 3 if r["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

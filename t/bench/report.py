#!/usr/bin/env python3
"""Helpers of compare.sh (standard library only).

  report.py freeport                 a free TCP port on 127.0.0.1
  report.py wait PORT SECONDS        wait until something greets with +OK there
  report.py pids ROOT                ROOT and all its descendants, one line
  report.py table RESULTS OUT ...    medians, ratios and targets as Markdown
"""
import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time


def freeport():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def wait(port, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=2) as s:
                if s.recv(512).startswith(b"+OK"):
                    s.sendall(b"QUIT\r\n")
                    s.recv(512)
                    return 0
        except OSError:
            pass
        time.sleep(0.2)
    return 1


def pids(root):
    parent = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, i = [int(root)], 0
    while i < len(out):
        out += [p for p, pp in parent.items() if pp == out[i]]
        i += 1
    print(" ".join(str(p) for p in out))


# (scenario, label, metric key, shown name, scale, better)
ROWS = [
    ("login", "login", "sessions_per_s", "sessions/s", 1, "high"),
    ("login", "login", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("login", "login", "lat_p50_ms", "p50 session ms", 1, "low"),
    ("login", "login", "lat_p99_ms", "p99 session ms", 1, "low"),
    ("login", "login", "lat_p999_ms", "p99.9 session ms", 1, "low"),
    ("login", "login", "errors", "errors", 1, "low"),
    ("download", "download", "mb_per_s", "MB/s", 1, "high"),
    ("download", "download", "sessions_per_s", "sessions/s", 1, "high"),
    ("download", "download", "server_cpu_ms_per_session", "server CPU s/1000 sessions", 1, "low"),
    ("download", "download", "lat_p50_ms", "p50 session ms", 1, "low"),
    ("download", "download", "lat_p99_ms", "p99 session ms", 1, "low"),
    ("download", "download", "errors", "errors", 1, "low"),
    ("drain", "drain", "sessions_per_s", "sessions/s", 1, "high"),
    ("drain", "drain", "msgs_per_s", "messages/s (RETR+DELE)", 1, "high"),
    ("drain", "drain", "mb_per_s", "MB/s", 1, "high"),
    ("drain", "drain", "server_cpu_ms_per_session", "server CPU s/1000 sessions", 1, "low"),
    ("drain", "drain", "lat_p99_ms", "p99 session ms", 1, "low"),
    ("drain", "drain", "errors", "errors", 1, "low"),
    ("idle", "idle", "established", "connections held", 1, "high"),
    ("idle", "idle", "pss_kb_per_conn", "PSS KB/connection", 1, "low"),
    ("idle", "idle", "rss_kb_per_conn", "RSS KB/connection", 1, "low"),
    ("idle", "idle", "pss_kb", "PSS total MB", 1 / 1024, "low"),
    ("idle", "idle", "errors", "errors", 1, "low"),
    ("idle", "idle 30k", "established", "connections held, 30,000 asked", 1, "high"),
    ("idle", "idle 30k", "pss_kb_per_conn", "PSS KB/connection", 1, "low"),
    ("idle", "idle 30k", "errors", "errors", 1, "low"),
    ("idle", "idle TLS", "established", "TLS connections held", 1, "high"),
    ("idle", "idle TLS", "pss_kb_per_conn", "PSS KB/TLS connection", 1, "low"),
    ("idle", "idle TLS", "rss_kb_per_conn", "RSS KB/TLS connection", 1, "low"),
    ("idle", "idle TLS", "pss_kb", "PSS total MB", 1 / 1024, "low"),
    ("idle", "idle TLS", "server_cpu_ms_per_session", "server CPU ms per TLS login", 1, "low"),
    ("idle", "idle TLS", "errors", "errors", 1, "low"),
    ("tls", "tls login ecdsa implicit", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login ecdsa implicit", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login ecdsa implicit", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login ecdsa implicit", "errors", "errors", 1, "low"),
    ("tls", "tls login ecdsa implicit resumed", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login ecdsa implicit resumed", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login ecdsa implicit resumed", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login ecdsa implicit resumed", "errors", "errors", 1, "low"),
    ("tls", "tls login ecdsa stls", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login ecdsa stls", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login ecdsa stls", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login ecdsa stls", "errors", "errors", 1, "low"),
    ("tls", "tls login ecdsa stls resumed", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login ecdsa stls resumed", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login ecdsa stls resumed", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login ecdsa stls resumed", "errors", "errors", 1, "low"),
    ("tls", "tls login rsa implicit", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login rsa implicit", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login rsa implicit", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login rsa implicit", "errors", "errors", 1, "low"),
    ("tls", "tls login rsa implicit resumed", "sessions_per_s", "sessions/s", 1, "high"),
    ("tls", "tls login rsa implicit resumed", "server_cpu_ms_per_session", "server CPU ms/session", 1, "low"),
    ("tls", "tls login rsa implicit resumed", "tls_resumed_pct", "% of handshakes resumed", 1, "high"),
    ("tls", "tls login rsa implicit resumed", "errors", "errors", 1, "low"),
    ("tls", "tls download", "mb_per_s", "MB/s", 1, "high"),
    ("tls", "tls download", "server_cpu_ms_per_session", "server CPU s/1000 sessions", 1, "low"),
    ("tls", "tls download", "lat_p99_ms", "p99 session ms", 1, "low"),
    ("tls", "tls download", "errors", "errors", 1, "low"),
    ("bigbox", "cold STAT", "lat_p50_ms", "cold login+STAT+QUIT ms", 1, "low"),
    ("bigbox", "warm STAT", "lat_p50_ms", "warm login+STAT+QUIT ms", 1, "low"),
    ("bigbox", "warm UIDL", "lat_p50_ms", "warm login+STAT+UIDL+QUIT ms", 1, "low"),
    ("bigbox", "syscalls bigbox", "syscalls", "syscalls, login+STAT+QUIT, 100k msgs", 1, "low"),
    ("bigbox", "syscalls user0001", "syscalls", "syscalls, login+STAT+QUIT, 5-20 msgs", 1, "low"),
    ("bigbox", "warm STAT", "errors", "errors", 1, "low"),
    ("delivery", "delivery", "sustained_rate", "sustained mail/s (95% deleted within 5 s)", 1,
     "high"),
    ("delivery", "delivery", "server_cpu_ms_per_msg", "server CPU ms/message at that rate", 1,
     "low"),
    ("delivery", "delivery", "lat_p95_s", "p95 delivery to deleted, s, at that rate", 1, "low"),
    ("delivery", "delivery", "first_failed_rate", "first rate that failed, mail/s", 1, "high"),
    ("delivery", "delivery", "errors", "errors (all trials)", 1, "low"),
    ("delivery", "drain small", "msgs_per_s", "messages/s, 20 clients, 1-64 KB", 1, "high"),
    ("delivery", "drain small", "server_cpu_ms_per_msg", "server CPU ms/message", 1, "low"),
    ("delivery", "drain small", "errors", "errors", 1, "low"),
]
SERVERS = ("fastpop", "dovecot", "courier", "null")


def derive(run):
    """Metrics computed from popload's fields: a drain session is USER, PASS, STAT,
    UIDL, LIST, RETR and DELE per message, QUIT (6 + 2n commands)."""
    r = run["run"]
    if run["scenario"] == "drain" and r.get("elapsed_s") and "commands" in r:
        r["msgs_per_s"] = (r["commands"] - 6 * r.get("sessions", 0)) / 2 / r["elapsed_s"]


def median_of(runs, server, scenario, label, key):
    vals = [r["run"].get(key) for r in runs if r["server"] == server and
            r["scenario"] == scenario and r["label"] == label and key in r["run"]]
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None, 0
    return statistics.median(vals), len(vals)


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(m):
    """(text, met) per target of issue 6 that this run can check."""
    g = lambda s, sc, l, k: m.get((s, sc, l, k))
    out = []

    def check(text, value, ok):
        out.append((text, "-" if value is None else fmt(value),
                    "n/a" if value is None else ("met" if ok(value) else "**missed**")))

    check("login sessions/s >= 10x Dovecot", ratio(g("fastpop", "login", "login", "sessions_per_s"),
          g("dovecot", "login", "login", "sessions_per_s")), lambda v: v >= 10)
    check("login sessions/s >= 0.75x null", ratio(g("fastpop", "login", "login", "sessions_per_s"),
          g("null", "login", "login", "sessions_per_s")), lambda v: v >= 0.75)
    check("login CPU/session <= 1/15 of Dovecot",
          ratio(g("fastpop", "login", "login", "server_cpu_ms_per_session"),
                g("dovecot", "login", "login", "server_cpu_ms_per_session")), lambda v: v <= 1 / 15)
    check("download MB/s >= 2x Dovecot", ratio(g("fastpop", "download", "download", "mb_per_s"),
          g("dovecot", "download", "download", "mb_per_s")), lambda v: v >= 2)
    check("download CPU/1000 sessions <= 1/4 of Dovecot",
          ratio(g("fastpop", "download", "download", "server_cpu_ms_per_session"),
                g("dovecot", "download", "download", "server_cpu_ms_per_session")),
          lambda v: v <= 0.25)
    check("download p99 below Dovecot's (ratio < 1)",
          ratio(g("fastpop", "download", "download", "lat_p99_ms"),
                g("dovecot", "download", "download", "lat_p99_ms")), lambda v: v < 1)
    check("idle PSS per connection <= 4 KB", g("fastpop", "idle", "idle", "pss_kb_per_conn"),
          lambda v: v <= 4)
    # The run of exactly 30,000 when there is one (more may pass the descriptor budget).
    lab = "idle 30k" if g("fastpop", "idle", "idle 30k", "established") is not None else "idle"
    est, err = g("fastpop", "idle", lab, "established"), g("fastpop", "idle", lab, "errors")
    check("idle >= 30,000 connections held, no error", est,
          lambda v: v >= 30000 and (err or 0) == 0)
    tls, plain = (g("fastpop", "idle", "idle TLS", "pss_kb_per_conn"),
                  g("fastpop", "idle", "idle", "pss_kb_per_conn"))
    if tls is not None:
        out.append(("(issue 8) idle TLS PSS KB/connection, reported beside plain (%s KB)"
                    % fmt(plain), fmt(tls), "reported"))
    check("bigbox warm STAT <= 1/20 of Dovecot",
          ratio(g("fastpop", "bigbox", "warm STAT", "lat_p50_ms"),
                g("dovecot", "bigbox", "warm STAT", "lat_p50_ms")), lambda v: v <= 0.05)
    check("bigbox cold STAT <= 1/3 of Dovecot",
          ratio(g("fastpop", "bigbox", "cold STAT", "lat_p50_ms"),
                g("dovecot", "bigbox", "cold STAT", "lat_p50_ms")), lambda v: v <= 1 / 3)
    for inc, name in (("dovecot", "Dovecot"), ("courier", "Courier")):
        check("(issue 17) delivery sustained rate >= 3x %s" % name,
              ratio(g("fastpop", "delivery", "delivery", "sustained_rate"),
                    g(inc, "delivery", "delivery", "sustained_rate")), lambda v: v >= 3)
        check("(issue 17) drain messages/s >= 3x %s" % name,
              ratio(g("fastpop", "drain", "drain", "msgs_per_s"),
                    g(inc, "drain", "drain", "msgs_per_s")), lambda v: v >= 3)
        check("(issue 17) small-message drain messages/s >= 3x %s" % name,
              ratio(g("fastpop", "delivery", "drain small", "msgs_per_s"),
                    g(inc, "delivery", "drain small", "msgs_per_s")), lambda v: v >= 3)
    check("bigbox syscalls do not grow with the mailbox (100k / small box)",
          ratio(g("fastpop", "bigbox", "syscalls bigbox", "syscalls"),
                g("fastpop", "bigbox", "syscalls user0001", "syscalls")), lambda v: v <= 1.5)
    return out


def targets_tls(m):
    """(text, value, verdict) per TLS goal of issue 17 that this run can check."""
    g = lambda s, l, k: m.get((s, "tls", l, k))
    out = []

    def check(text, value, ok):
        out.append((text, "-" if value is None else fmt(value),
                    "n/a" if value is None else ("met" if ok(value) else "**missed**")))

    cpu = "server_cpu_ms_per_session"
    for cert in ("ecdsa", "rsa"):
        lab = "tls login %s implicit" % cert
        check("TLS login CPU/session <= 1/3 of Dovecot (%s, full handshakes)" % cert,
              ratio(g("fastpop", lab, cpu), g("dovecot", lab, cpu)), lambda v: v <= 1 / 3)
        check("TLS login CPU/session <= 1/3 of Dovecot (%s, resumed)" % cert,
              ratio(g("fastpop", lab + " resumed", cpu), g("dovecot", lab + " resumed", cpu)),
              lambda v: v <= 1 / 3)
        check("resumed TLS session >= 3x cheaper than a full one (fastpop, %s)" % cert,
              ratio(g("fastpop", lab, cpu), g("fastpop", lab + " resumed", cpu)),
              lambda v: v >= 3)
    check("TLS login CPU/session <= 1/3 of Dovecot (ecdsa, STLS)",
          ratio(g("fastpop", "tls login ecdsa stls", cpu), g("dovecot", "tls login ecdsa stls", cpu)),
          lambda v: v <= 1 / 3)
    check("TLS download MB/s >= 2x Dovecot",
          ratio(g("fastpop", "tls download", "mb_per_s"), g("dovecot", "tls download", "mb_per_s")),
          lambda v: v >= 2)
    idle = m.get(("fastpop", "idle", "idle TLS", "pss_kb_per_conn"))
    check("idle TLS PSS per connection <= 8 KB", idle, lambda v: v <= 8)
    return out


def machine():
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    return os.cpu_count(), mem, platform.release(), cpu


def previous_tables(path):
    """The header, table and targets of an earlier RESULTS.md (not its raw runs nor
    what it kept of runs before it), headings one level down."""
    try:
        with open(path) as f:
            text = f.read().splitlines()
    except OSError:
        return []
    keep = []
    for l in text:
        if l.startswith("## Raw runs") or l.startswith("## Previous run"):
            break
        if l.startswith("# fastpop benchmark results"):
            continue
        if l.startswith("Written by `t/bench/compare.sh`"):
            continue
        keep.append("#" + l if l.startswith("#") else l)
    date = next((l.split(":", 1)[1].strip() for l in keep if l.startswith("- date:")), "?")
    rev = next((l.split("git", 1)[1].split(";")[0].strip() for l in keep
                if l.startswith("- fastpop: git")), "?")
    while keep and not keep[0].strip():
        keep.pop(0)
    return ["## Previous run (%s, fastpop %s)" % (date, rev), "",
            "Kept from the RESULTS.md this run replaced, so the change is visible "
            "(its raw runs are in git history).", ""] + keep


def table(path, out, command, dovecot, settings, src, previous=None, courier="none"):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    for r in runs:
        derive(r)
    m = {}
    lines = []
    ncpu, mem, kernel, cpu = machine()
    rev = os.environ.get("BENCH_REV", "")
    try:
        rev = rev or subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                                    capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        rev = "?"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += ["# fastpop benchmark results", "",
              "Written by `t/bench/compare.sh` (see README.md for what each row measures).", "",
              "- date: %s" % now,
              "- machine: %s CPUs (%s), %s memory, Linux %s" % (ncpu, cpu, mem, kernel),
              "- fastpop: git %s; Dovecot: %s; Courier: %s" % (rev, dovecot, courier),
              "- command: `%s`" % command,
              "- settings: %s" % settings, "",
              "Each cell is the median over the rounds (n = number of runs). Ratios are "
              "fastpop/Dovecot, fastpop/Courier and fastpop/null; for rows where lower is "
              "better a ratio below 1 favours fastpop.", "",
              "| scenario | metric | fastpop | Dovecot | Courier | null | fastpop/Dovecot "
              "| fastpop/Courier | fastpop/null | n |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc, label, key, name, scale, _ in ROWS:
        vals = {}
        n = 0
        for srv in SERVERS:
            v, k = median_of(runs, srv, sc, label, key)
            if v is not None:
                v *= scale
            vals[srv] = v
            m[(srv, sc, label, key)] = v
            n = max(n, k)
        if all(v is None for v in vals.values()):
            continue
        if label == sc or sc == "bigbox":
            shown = sc
        elif label.startswith(sc + " "):
            shown = label
        else:
            shown = "%s (%s)" % (sc, label.split(" ")[0])
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            shown,
            name, fmt(vals["fastpop"]), fmt(vals["dovecot"]), fmt(vals["courier"]),
            fmt(vals["null"]), fmt(ratio(vals["fastpop"], vals["dovecot"])),
            fmt(ratio(vals["fastpop"], vals["courier"])), fmt(ratio(vals["fastpop"], vals["null"])),
            n))
    lines += ["", "## Targets (issue 6, issue 17)", "", "| target | value | verdict |", "|---|---:|---|"]
    for text, value, verdict in targets(m):
        lines.append("| %s | %s | %s |" % (text, value, verdict))
    tls_targets = targets_tls(m)
    if any(v != "-" for _, v, _ in tls_targets):
        lines += ["", "## Targets (issue 17: TLS)", "", "| target | value | verdict |",
                  "|---|---:|---|"]
        for text, value, verdict in tls_targets:
            lines.append("| %s | %s | %s |" % (text, value, verdict))
    lines += ["", "## Raw runs", "", "<details><summary>%d JSON lines from popload</summary>" %
              len(runs), "", "```"]
    lines += [json.dumps(r, sort_keys=True) for r in runs]
    lines += ["```", "</details>", ""]
    if previous:
        prev = previous_tables(previous)
        if prev:
            lines += prev + [""]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[:lines.index("## Raw runs")]))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "freeport":
        return freeport()
    if cmd == "wait":
        return wait(sys.argv[2], sys.argv[3])
    if cmd == "pids":
        return pids(sys.argv[2])
    if cmd == "table":
        p = argparse.ArgumentParser()
        p.add_argument("results")
        p.add_argument("out")
        p.add_argument("--command", default="")
        p.add_argument("--dovecot", default="")
        p.add_argument("--courier", default="none")
        p.add_argument("--settings", default="")
        p.add_argument("--src", default=".")
        p.add_argument("--previous", default=None,
                       help="an earlier RESULTS.md whose table and targets to keep below")
        a = p.parse_args(sys.argv[2:])
        return table(a.results, a.out, a.command, a.dovecot, a.settings, a.src, a.previous,
                     a.courier)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main() or 0)

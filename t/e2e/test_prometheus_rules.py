"""etc/prometheus/fastpop.rules.yml against a real fastpopd: every metric name,
label and label value the rules (and their annotations and comments) name is
in a real GET /metrics after real traffic, every recorded name an alert uses is
recorded, and rate()/increase() read only counters; then the real scrape, as
input series for `promtool test rules`, makes the recording rules come out at
the numbers the traffic implies and the saturation alert fire.

The synthetic cases for every alert (firing and not) are in
t/prometheus/fastpop.rules.test.yml (ctest prometheus.test_rules). promtool
comes from Debian's prometheus package, installed by make deps: without it
this test fails, it never skips."""
import json
import os
import re
import shutil
import socket
import subprocess

from fastpop_harness import SRC, free_port, main, wait_until
from test_stats import parse_prometheus, value
from tls_fixture import TlsTest, client_context, tls_connect

RULES = os.path.join(SRC, "etc", "prometheus", "fastpop.rules.yml")
# The exporter's counters as they grow in series: name suffixes that only go up.
MONOTONIC = ("_total", "_bucket", "_count", "_sum")


def promtool():
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError("promtool not found: run make deps (Debian package prometheus)")
    return path


def load_rules(path):
    """[(kind, name, expr)] of a rules file in the shape fastpop.rules.yml has:
    `- record: NAME` or `- alert: NAME`, then `expr:` on one line or as a block
    (`expr: |` and the more indented lines after it). The standard library has
    no YAML reader; the test compares the count with promtool's own."""
    rules, lines, i = [], open(path).read().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*- (record|alert): (\S+)\s*$", lines[i])
        if m:
            rules.append([m.group(1), m.group(2), None])
            i += 1
            continue
        m = re.match(r"^(\s*)expr: ?(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2).strip() not in ("|", "|-", ">", ">-"):
            rules[-1][2] = m.group(2).strip()
            continue
        body, indent = [], len(m.group(1))
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i].strip())
            i += 1
        rules[-1][2] = "\n".join(body).strip()
    return [tuple(r) for r in rules]


def scrape_types(text):
    return dict(line.split(" ")[2:4] for line in text.splitlines() if line.startswith("# TYPE "))


class PrometheusRulesTest(TlsTest):
    listeners = {"tls": "tls"}
    plaintext_auth = "yes"
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    # Two held sessions fill it: the saturation alert must fire on the real numbers.
    max_connections = 2

    def setUp(self):
        self.metrics_port = free_port()
        super().setUp()

    def tls_config(self, certs=None):
        return super().tls_config(certs) + (
            "metrics_listen = 127.0.0.1:%d\nmax_connections = %d\n"
            % (self.metrics_port, self.max_connections))

    def scrape(self):
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "http://127.0.0.1:%d/metrics" % self.metrics_port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.last_text = r.stdout
        return parse_prometheus(r.stdout, self)

    def idle(self):
        """No connection open (each step's slot is free before the next one)."""
        return wait_until(lambda: (lambda s: s if value(s, "fastpop_connections") == 0
                                   else None)(self.scrape()), 10, what="no open connection")

    def traffic(self):
        """One good and one bad login, a TLS handshake that works and one that
        fails; then alice and bob stay logged in. Returns (before, after) scrapes."""
        before = self.idle()
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.login("alice", "alice-secret").startswith("+OK"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        self.idle()
        p = self.d.connect()
        self.addCleanup(p.close)
        self.assertTrue(p.login("bob", "wrong").startswith("-ERR [AUTH]"))
        self.assertTrue(p.cmd("QUIT").startswith("+OK"))
        p.close()
        self.idle()
        s = tls_connect(self.port("tls"), client_context(self.ca))
        self.addCleanup(s.close)
        self.assertTrue(s.line().startswith("+OK"))
        self.assertTrue(s.cmd("QUIT").startswith("+OK"))
        s.close()
        self.idle()
        # Plain POP3 to the implicit TLS port: a handshake that fails.
        raw = socket.create_connection(("127.0.0.1", self.port("tls")), timeout=10)
        self.addCleanup(raw.close)
        raw.sendall(b"USER alice\r\n" + b"\0" * 64)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
        raw.close()
        self.idle()
        held = []
        for user in ("alice", "bob"):
            h = self.d.connect()
            self.addCleanup(h.close)
            self.assertTrue(h.login(user, self.users[user]).startswith("+OK"))
            held.append(h)
        after = wait_until(lambda: (lambda s: s if value(s, "fastpop_connections") == 2 and
                                    value(s, "fastpop_tls_handshakes_total", result="failed") -
                                    value(before, "fastpop_tls_handshakes_total",
                                          result="failed") == 1 else None)(self.scrape()),
                           10, what="two open sessions and the failed handshake counted")
        return before, after

    def test_rules_match_a_real_scrape(self):
        before, after = self.traffic()
        types = scrape_types(self.last_text)
        delta = lambda name, **l: value(after, name, **l) - value(before, name, **l)
        # What the traffic was, as the exporter counted it.
        self.assertEqual(delta("fastpop_logins_total", mechanism="USER", result="ok"), 3)
        self.assertEqual(delta("fastpop_logins_total", mechanism="USER", result="failed"), 1)
        self.assertEqual(sum(v - before[k] for k, v in after.items()
                             if k[0] == "fastpop_logins_total"), 4)
        self.assertEqual(delta("fastpop_tls_handshakes_total", result="TLSv1.3"), 1)
        self.assertEqual(delta("fastpop_tls_handshakes_total", result="failed"), 1)
        self.assertEqual(value(after, "fastpop_max_connections"), self.max_connections)
        self.assertEqual(value(after, "fastpop_open_files_wanted"), 3 * self.max_connections + 256)
        self.assertGreater(value(after, "fastpop_open_files_limit"), 0)
        self.assertEqual(sum(v for k, v in after.items() if k[0] == "fastpop_respawns_total"), 0)
        self.assertGreater(delta("fastpop_auth_helper_duration_seconds_count"), 0)

        self.check_names(after, types)
        self.check_with_promtool(before, after)

    def check_names(self, samples, types):
        text = open(RULES).read()
        rules = load_rules(RULES)
        # The reader saw every rule promtool sees.
        r = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: %d rules found" % len(rules), r.stdout)
        self.assertTrue(all(expr for _, _, expr in rules), rules)

        names = {n for n, _ in samples}
        labels = {}                       # metric name -> {label: {values}}
        for n, ls in samples:
            for k, v in ls:
                labels.setdefault(n, {}).setdefault(k, set()).add(v)
        for name in list(labels):
            for suffix in ("_bucket", "_count", "_sum"):
                if name.endswith(suffix):  # a histogram's family name has its labels
                    base = labels.setdefault(name[:-len(suffix)], {})
                    for k, vs in labels[name].items():
                        if k != "le":
                            base.setdefault(k, set()).update(vs)

        def exported(name):
            return name in names or name + "_bucket" in names

        # Every fastpop_ name anywhere in the file (expressions, annotations,
        # comments), but not the fastpop_ inside a recorded name (level:name:ops).
        mentioned = set(re.findall(r"(?<![\w:])(fastpop_[a-z0-9_]+)(?![\w:])", text))
        self.assertGreater(len(mentioned), 10)
        self.assertEqual({n for n in mentioned if not exported(n)}, set(),
                         "named in the rules file, not exported by fastpopd")

        recorded = {name: expr for kind, name, expr in rules if kind == "record"}

        def sources(expr):
            """The exported metrics an expression reads, through recorded names."""
            found = set()
            for ident in re.findall(r"(?<![\w:$.])([a-zA-Z_][\w:]*)", expr):
                if ":" in ident:
                    self.assertTrue(ident in recorded, "%s is used, never recorded" % ident)
                    found |= sources(recorded[ident])
                elif ident.startswith("fastpop_"):
                    self.assertTrue(exported(ident), ident)
                    found.add(ident)
            return found

        for kind, name, expr in rules:
            src = sources(expr)
            self.assertTrue(src, "%s reads no fastpop metric" % name)
            # without/by/ignoring/on name labels the metrics read really have.
            for clause in re.findall(r"\b(?:without|by|ignoring|on)\s*\(([^)]*)\)", expr):
                for label in filter(None, (l.strip() for l in clause.split(","))):
                    self.assertTrue(any(label in labels.get(m, {}) for m in src),
                                    "%s: label %s on none of %s" % (name, label, src))
            # rate() and increase() only of counters (histogram series are counters too).
            for fn, metric in re.findall(r"\b(rate|increase)\((fastpop_\w+)", expr):
                family = re.sub(r"_(bucket|count|sum)$", "", metric)
                self.assertTrue(types.get(metric) == "counter" or
                                types.get(family) == "histogram",
                                "%s: %s of %s, a %s" % (name, fn, metric, types.get(metric)))
        # Label matchers anywhere (expressions, annotations, comments): the
        # label exists, and so does each value an = or a plain a|b list names.
        for metric, body in re.findall(r"(?<![\w:])([a-zA-Z_][\w:]*)\{([^}]*)\}", text):
            metrics = sources(metric)
            for label, op, want in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
                have = set().union(*(labels.get(m, {}).get(label, set()) for m in metrics))
                self.assertTrue(have, "no label %s on %s" % (label, metric))
                if op in ("=~", "!~") and not re.fullmatch(r"[\w.|+-]+", want):
                    continue    # a real pattern, not a list of values
                wanted = {want} if op in ("=", "!=") else set(want.split("|"))
                self.assertEqual(wanted - have, set(), "%s{%s}: not exported" % (metric, label))
        # Every alert has a severity and a summary: what a pager shows.
        self.assertEqual(len(re.findall(r"severity: (?:warning|critical)", text)),
                         len([r for r in rules if r[0] == "alert"]))

    def check_with_promtool(self, before, after):
        """The real scrape as a minute-by-minute series (each minute the same
        traffic again, gauges as scraped): recording rules at the numbers the
        traffic implies, the saturation alert firing, the others not."""
        target = {"instance": "127.0.0.1:%d" % self.metrics_port, "job": "fastpop"}

        def series_name(name, labels):
            ls = dict(labels, **target)
            return "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in sorted(ls.items())))

        def number(v):
            return "%d" % v if v == int(v) else "%.6f" % v

        series = []
        for (name, labels), v in sorted(after.items()):
            if name.endswith(MONOTONIC):
                step = v - before[(name, labels)]
                values = "%s+%sx15" % (number(before[(name, labels)]), number(step))
            else:
                values = "%sx15" % number(v)
            series.append({"series": series_name(name, labels), "values": values})

        def sample(record, v):
            return {"labels": series_name(record, ()), "value": v}

        limit_ratio = value(after, "fastpop_open_files_limit") / \
            value(after, "fastpop_open_files_wanted")
        near_limit = {
            "exp_labels": dict(target, severity="warning"),
            "exp_annotations": {
                "summary": "fastpop near max_connections on %s" % target["instance"],
                "description": "100% of max_connections are open (alert above 90%). At 100% "
                               "new clients are refused with [SYS/TEMP] Server busy."}}
        alerts = [{"eval_time": "10m", "alertname": a} for a in (
            "FastpopLoginFailuresHigh", "FastpopLoginTempfails", "FastpopConnectionsRefused",
            "FastpopRespawnLoop")]
        alerts.append({"eval_time": "4m", "alertname": "FastpopConnectionsNearLimit"})
        alerts.append({"eval_time": "10m", "alertname": "FastpopConnectionsNearLimit",
                       "exp_alerts": [near_limit]})
        test = {
            "rule_files": [RULES],
            "evaluation_interval": "1m",
            "tests": [{
                "name": "a real scrape, every minute",
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    # 1 failed of 4 (3 ok): the traffic above.
                    {"expr": "instance:fastpop_login_failures:ratio_rate5m", "eval_time": "10m",
                     "exp_samples": [sample("instance:fastpop_login_failures:ratio_rate5m",
                                            0.25)]},
                    {"expr": "instance:fastpop_login_tempfails:ratio_rate5m", "eval_time": "10m",
                     "exp_samples": [sample("instance:fastpop_login_tempfails:ratio_rate5m",
                                            0)]},
                    # 1 of 2 handshakes failed.
                    {"expr": "instance:fastpop_tls_handshake_failures:ratio_rate15m",
                     "eval_time": "10m",
                     "exp_samples": [sample("instance:fastpop_tls_handshake_failures:"
                                            "ratio_rate15m", 0.5)]},
                    # Two sessions held, max_connections = 2.
                    {"expr": "instance:fastpop_connections:saturation", "eval_time": "10m",
                     "exp_samples": [sample("instance:fastpop_connections:saturation", 1)]},
                    {"expr": "instance:fastpop_open_files:limit_ratio", "eval_time": "10m",
                     "exp_samples": [sample("instance:fastpop_open_files:limit_ratio",
                                            limit_ratio)]},
                ],
                "alert_rule_test": alerts,
            }],
        }
        if limit_ratio >= 1:      # the master could raise its limit (it runs as root here)
            alerts.append({"eval_time": "30m", "alertname": "FastpopOpenFilesLimitLow"})
        path = os.path.join(self.d.dir, "real-scrape.test.yml")
        with open(path, "w") as f:
            json.dump(test, f, indent=1)    # JSON is YAML
        r = subprocess.run([promtool(), "test", "rules", path], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)


if __name__ == "__main__":
    main()

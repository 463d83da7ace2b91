#!/usr/bin/env bash
# deploy_test.sh BUILD_DIR SOURCE_DIR: the files in deploy/ against promtool and a live host.
# promtool checks and unit-tests the alert rules and checks the scrape config; then a
# `blockcoord host` serving /metrics runs against a private redis-server, gets a signal and a
# round of wait timeouts so its labelled histograms have series, and every metric name and
# label used by an alert or a dashboard panel or variable must be in that live body;
# `promtool check metrics` lints the body. promtool comes from the Debian prometheus package
# that scripts/install-deps installs, so a missing promtool is a failure, not a skip.
set -uo pipefail
build=$1
src=$2
bc="$build/blockcoord"
command -v promtool >/dev/null ||
    { echo "FAIL: promtool not found: scripts/install-deps installs it (Debian package prometheus)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found (parses the dashboard and the PromQL)"; exit 1; }
BINS=("$bc")
prom="$src/deploy/prometheus"
dash="$src/deploy/grafana/blockcoord-dashboard.json"

# shellcheck source=tests/coord_lib.sh
source "$src/tests/coord_lib.sh"

run() { # run NAME CMD...: pass when CMD exits 0, else show its output
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else
        echo "FAIL $name:"; sed 's/^/    /' <<<"$out" | tail -40; fail=1
    fi
}

# ---------------------------------------------------------------- promtool on the files
run "promtool check rules alerts.yml" promtool check rules "$prom/alerts.yml"
run "promtool test rules alerts_test.yml" promtool test rules "$prom/alerts_test.yml"
run "promtool check config prometheus.yml" promtool check config "$prom/prometheus.yml"
nrules=$(promtool check rules "$prom/alerts.yml" 2>&1 | sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p')
want_alerts="HighBlockingCoordinators HighBlockingDuration HighSignalLatency HeartbeatFailures
    TimeoutEvents StuckCoordinator CoordinatorDeathSpike SignalDeliveryFailure
    NoActiveCoordinators CircuitBreakerOpen"
missing=""
for a in $want_alerts; do
    grep -qE "^ *- alert: $a\$" "$prom/alerts.yml" || missing="$missing $a"
    # Each alert has a firing and a silent unit test.
    grep -qE "^ *alertname: $a\$" "$prom/alerts_test.yml" || missing="$missing test:$a"
done
if [ -z "$missing" ] && [ "$nrules" = 10 ]; then ok "alerts.yml has the 10 runbook alerts, each unit-tested"; else
    echo "FAIL alerts: missing:${missing:- none}; promtool counted ${nrules:-no} rules (want 10)"; fail=1
fi

# ---------------------------------------------------------------- a live /metrics body
fetch() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
hpid=""
for _ in 1 2 3; do # a free port can be taken between free_port and the bind: retry
    port=$(free_port)
    # --timeout 1000: every wait times out after 1 s, so blocking_duration_seconds gets a
    # status="timeout" series and timeout_events_total counts.
    "$bc" host --count 20 --swarm deploy-test --timeout 1000 --metrics-port "$port" \
        >"$dir/host.out" 2>"$dir/host.err" &
    hpid=$!
    for _ in $(seq 100); do
        grep -qF "hosting 20 coordinators" "$dir/host.out" 2>/dev/null && break
        kill -0 "$hpid" 2>/dev/null || break
        sleep 0.05
    done
    grep -qF "Metrics server listening on :$port" "$dir/host.out" && break
    kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; hpid=""
done
[ -n "$hpid" ] || { bad "blockcoord host --metrics-port did not start" "$dir/host.out" "$dir/host.err"; exit 1; }
PIDS[host]=$hpid
# One signal round trip, so signal_delivery_latency_seconds and the completed waits of
# blocking_duration_seconds have series.
if timeout 20 "$bc" signal --from deploy-cli --to coord-0 --type completion --wait-ack 5000 \
    >"$dir/sig.out" 2>&1; then ok "signal to the host acknowledged"; else
    bad "blockcoord signal --wait-ack to coord-0" "$dir/sig.out" "$dir/host.out" "$dir/host.err"
fi
body="$dir/metrics.txt"
for _ in $(seq 60); do # until a wait has timed out (1 s) and the signal is observed
    fetch "http://127.0.0.1:$port/metrics" >"$body" 2>"$dir/fetch.err"
    grep -q '^blocking_duration_seconds_count{.*status="timeout"' "$body" &&
        grep -q '^signal_delivery_latency_seconds_count{' "$body" && break
    sleep 0.1
done
if grep -qx 'active_coordinators 20' "$body"; then ok "live /metrics: active_coordinators 20"; else
    bad "live /metrics body from blockcoord host" "$body" "$dir/fetch.err" "$dir/host.err"
fi

# ---------------------------------------------------------------- names and labels in use
# Every metric an alert or a dashboard expression names must be exported, and every label it
# matches on or groups by must be on that metric's samples. instance and job are the only
# other labels allowed: Prometheus attaches them to every scraped series.
if python3 - "$body" "$prom/alerts.yml" "$dash" "$src/deploy/README.md" <<'EOF'; then
import json, re, sys

body_path, alerts_path, dash_path, readme_path = sys.argv[1:5]
SCRAPE_LABELS = {"instance", "job"}
errors = []

# --- the live body: labels per sample name, and the type of every family with a TYPE line
types, samples = {}, {}
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')
for line in open(body_path):
    line = line.rstrip("\n")
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        types[m.group(1)] = m.group(2)
        continue
    if not line or line.startswith("#"):
        continue
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
    if not m:
        errors.append("unparsable sample line in /metrics: " + line)
        continue
    samples.setdefault(m.group(1), set()).update(label_re.findall(m.group(3) or ""))

def family_of(name):
    """The exported family a series name belongs to, or None."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return None

# --- a PromQL scanner: metric selectors with their matcher labels, and by/without lists
TOKEN = re.compile(r"""\s+|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])|(?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
    |(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    |(?P<id>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}])""", re.X)
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
               "count_values", "bottomk", "topk", "quantile"}

def tokens(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError("cannot scan at %r" % expr[pos:pos + 20])
        pos = m.end()
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup)))
    return out

def match_paren(toks, i):
    depth = 0
    for j in range(i, len(toks)):
        if toks[j][1] == "(":
            depth += 1
        elif toks[j][1] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced parentheses")

def label_list(toks, i):
    """Labels of the ( ... ) list opening at i, and the index after it."""
    j = match_paren(toks, i)
    return [t[1] for t in toks[i + 1:j] if t[0] == "id"], j + 1

def check_expr(expr, where):
    try:
        toks = tokens(expr)
        selectors = []   # (token index, metric, matcher labels)
        groupings = []   # (labels, first, last token index of the aggregated expression)
        i = 0
        while i < len(toks):
            kind, text = toks[i]
            nxt = toks[i + 1][1] if i + 1 < len(toks) else None
            if kind == "id" and text in GROUPING and nxt == "(":
                labels, after = label_list(toks, i + 1)
                if text in ("on", "ignoring", "group_left", "group_right"):
                    groupings.append((labels, 0, len(toks) - 1))
                i = after
                continue
            if kind == "id" and text in AGGREGATORS and nxt in ("(", "by", "without"):
                j, labels = i + 1, []
                if toks[j][1] in ("by", "without"):
                    labels, j = label_list(toks, j + 1)
                end = match_paren(toks, j)
                if end + 1 < len(toks) and toks[end + 1][1] in ("by", "without"):
                    labels, _ = label_list(toks, end + 2)
                groupings.append((labels, j, end))
                i = j
                continue
            if kind == "id" and nxt == "(" or kind == "id" and text in KEYWORDS:
                i += 1
                continue
            if kind == "id" or text == "{":
                metric, labels = (text, []) if kind == "id" else (None, [])
                j = i + 1 if kind == "id" else i
                if j < len(toks) and toks[j][1] == "{":
                    end = j
                    while toks[end][1] != "}":
                        end += 1
                    inner = toks[j + 1:end]
                    for k, t in enumerate(inner):
                        if t[0] == "id" and k + 1 < len(inner) and inner[k + 1][1] in ("=", "!=", "=~", "!~"):
                            if t[1] == "__name__" and inner[k + 2][0] == "str":
                                metric = inner[k + 2][1][1:-1]
                            else:
                                labels.append(t[1])
                    j = end + 1
                if metric is None:
                    raise ValueError("selector without a metric name")
                selectors.append((i, metric, labels))
                i = j
                continue
            i += 1
    except (ValueError, IndexError) as e:
        errors.append("%s: cannot scan %r: %s" % (where, expr, e))
        return set()
    if not selectors:
        errors.append("%s: no metric in %r" % (where, expr))
    for idx, metric, labels in selectors:
        fam = family_of(metric)
        if fam is None:
            errors.append("%s: metric %s is not exported (no sample, no # TYPE line in the live /metrics)"
                          % (where, metric))
            continue
        if metric == fam and types[fam] == "histogram":
            errors.append("%s: %s is a histogram and has no series of its own; use %s_bucket, _sum or _count"
                          % (where, metric, metric))
            continue
        used = set(labels)
        used.update(l for g, a, b in groupings if a <= idx <= b for l in g)
        have = samples.get(metric)
        for label in sorted(used - SCRAPE_LABELS):
            if have is None:
                errors.append("%s: %s is exported but has no sample yet, so its label %s cannot be checked"
                              % (where, metric, label))
            elif label not in have:
                errors.append("%s: label %s is not on %s (its labels: %s)"
                              % (where, label, metric, ", ".join(sorted(have)) or "none"))
    return {m for _, m, _ in selectors}

used_metrics = set()

# --- alerts.yml: every expr (promtool has validated the file; each expr is on one line)
exprs = 0
for n, line in enumerate(open(alerts_path), 1):
    m = re.match(r"\s*expr:\s*(.*)$", line)
    if m:
        expr = m.group(1).strip()
        if expr[:1] in ("|", ">", "'", '"') or not expr:
            errors.append("alerts.yml:%d: write expr on one line, unquoted, so this check reads it" % n)
            continue
        exprs += 1
        used_metrics |= check_expr(expr, "alerts.yml:%d" % n)
if exprs != 10:
    errors.append("alerts.yml: %d expr lines, want 10" % exprs)

# --- README anchors named by the runbook annotations
def slug(heading):
    return re.sub(r"[^a-z0-9_ -]", "", heading.strip().lower()).replace(" ", "-")
anchors = {slug(l.lstrip("#")) for l in open(readme_path) if l.startswith("#")}
for n, line in enumerate(open(alerts_path), 1):
    m = re.match(r'\s*runbook:\s*"deploy/README\.md#([^"]+)"', line)
    if m and m.group(1) not in anchors:
        errors.append("alerts.yml:%d: runbook anchor #%s has no heading in deploy/README.md" % (n, m.group(1)))

# --- the dashboard: every panel target and every query variable
try:
    dash = json.load(open(dash_path))
except ValueError as e:
    print("FAIL dashboard JSON does not parse: %s" % e)
    sys.exit(1)
if "${DS_PROMETHEUS}" not in json.dumps(dash) or not any(
        i.get("name") == "DS_PROMETHEUS" for i in dash.get("__inputs", [])):
    errors.append("dashboard: no DS_PROMETHEUS datasource input")

def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))

targets = 0
for p in walk(dash.get("panels", [])):
    if p.get("type") == "row":
        continue
    if not p.get("targets"):
        errors.append("dashboard panel %r has no query" % p.get("title"))
    for t in p.get("targets", []):
        targets += 1
        where = "dashboard panel %r %s" % (p.get("title"), t.get("refId"))
        if not t.get("expr"):
            errors.append(where + ": empty expr")
            continue
        used_metrics |= check_expr(t["expr"], where)
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") != "query":
        continue
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q or "")
    if not m:
        errors.append("dashboard variable %s: want label_values(selector, label), got %r" % (v.get("name"), q))
        continue
    sel, label = m.groups()
    sel = sel.rstrip("}") + ("," if "{" in sel else "{") + label + '=~".+"}'
    used_metrics |= check_expr(sel, "dashboard variable %s" % v.get("name"))

panel_needs = ["active_coordinators", "blocking_duration_seconds_bucket",
               "signal_delivery_latency_seconds_bucket", "heartbeat_failures_total",
               "timeout_events_total", "circuit_breaker_state", "redis_command_latency_seconds_bucket"]
for need in panel_needs:
    if need not in used_metrics:
        errors.append("dashboard/alerts: no expression uses %s" % need)
if not any(p.get("type") == "heatmap" for p in walk(dash.get("panels", []))):
    errors.append("dashboard: no heatmap panel")

for e in errors:
    print("FAIL " + e)
print("checked %d alert expressions and %d dashboard queries: %d metrics, %d problems"
      % (exprs, targets, len(used_metrics), len(errors)))
sys.exit(1 if errors else 0)
EOF
    ok "every metric and label in alerts.yml and the dashboard is in the live /metrics body"
else
    fail=1
fi

# ---------------------------------------------------------------- promtool check metrics
# promtool exits 3 on lint problems. blocking_coordinators_total is a gauge whose name ends
# in _total, which the linter flags; the Node peers export it under exactly this name and
# type (dashboards and the runbook query it), so that one complaint is expected. Anything
# else, and any parse error (exit 1), fails.
lint=$(promtool check metrics <"$body" 2>&1); lrc=$?
rest=$(grep -vxF 'blocking_coordinators_total non-counter metrics should not have "_total" suffix' <<<"$lint")
if { [ "$lrc" = 0 ] || [ "$lrc" = 3 ]; } && [ -z "$rest" ]; then
    ok "promtool check metrics on the live body (rc $lrc)"
else
    echo "FAIL promtool check metrics: rc $lrc"; sed 's/^/    /' <<<"$lint" | head -20; fail=1
fi

kill -TERM "$hpid"
for _ in $(seq 100); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$hpid" 2>/dev/null; then bad "blockcoord host did not stop on SIGTERM" "$dir/host.out"; else
    wait "$hpid"; hrc=$?
    unset "PIDS[host]"
    [ "$hrc" = 0 ] || bad "blockcoord host exit $hrc after SIGTERM" "$dir/host.out" "$dir/host.err"
fi
exit $fail

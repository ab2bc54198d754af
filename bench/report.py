"""report.py PARTS_DIR OUT_JSON [--markdown] [--backend sqlite|pg]: joins bench.sh's parts into one table.

Prints each figure next to its target (issue 11, "the hot path") and
whether it is met, and writes every figure, target and ratio to OUT_JSON.
Every ratio is taken between parts of the same run: the fdatasync time comes
from the `machine` part, the ceiling from the `ceiling` part. A row whose
part is missing is left out; one whose reference part is missing prints
without a verdict. Nothing here asserts: a missed target is reported as
"miss". The peers themselves are measured by make bench-peers, in one
sitting with jobq (bench/peers_report.py); nothing here quotes them.
--markdown prints the table as Markdown, for docs/benchmarks.md.

--backend (default sqlite) names the store the parts ran on; it heads the
table and is recorded in OUT_JSON. On pg the sequential enqueue and the
round trip are held against the same run's `pgbench` part (PostgreSQL's
own single-row INSERT transactions on the same cluster) instead of the
disk's fdatasync: the sequential enqueue's target is at least 0.8 x
pgbench's single-client tps, and the 64-connection submit is shown as a
ratio of pgbench's 64-client tps.

On pg the `cluster` part (issue 14) adds 1, 2 and 3 jobqd on one schema:
end-to-end jobs/s at each node count with its ratio to one node, and the
claim latency of a job submitted on one node (p50 / p99), on that node
alone and on another node, the p99 held to the issue's 50 ms. Its note
(what a node more means on this machine's cores) and the load average
print under the table."""
import json
import os
import sys
import time

parts_dir, out_path = sys.argv[1], sys.argv[2]
markdown = "--markdown" in sys.argv[3:]
backend = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv[3:-1] else "sqlite"
PARTS = ("machine", "pgbench", "ceiling", "submit", "batch", "e2e", "peers", "external", "waiters", "growth", "backlog", "soak",
         "outbound", "cluster")


def load(name):
    try:
        with open(os.path.join(parts_dir, name + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


rows = []   # (area, figure, value, unit, target text, verdict)
res = {"backend": backend, "parts": {}, "checks": []}


def check(area, name, value, unit, target, ok, against=None):
    verdict = "-" if ok is None else ("ok" if ok else "miss")
    rows.append((area, name, value, unit, target, verdict))
    res["checks"].append({"area": area, "figure": name, "value": value, "unit": unit,
                          "target": target, "met": ok, "against": against})


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def at_most(r, limit):
    return None if r is None else r <= limit


def at_least(r, limit):
    return None if r is None else r >= limit


machine = load("machine")
fds = machine["fdatasync_per_s"] if machine else None
fsync_us = round(1e6 / fds, 1) if fds else None
fsync_txt = f"{fsync_us:,} µs" if fsync_us else "? (no machine part)"
if machine:
    check("machine", "fdatasync (4 KiB append), one call", fsync_us, "µs", "-", None,
          {"fdatasync_per_s": fds})

pgb = load("pgbench") if backend == "pg" else None
pg1 = pgb["c1"]["tps"] if pgb else None
pg64 = pgb["c64"]["tps"] if pgb else None
pg1_txt = f"{round(pg1):,} tps" if pg1 else "? (no pgbench part)"
if pgb:
    res["settings"] = pgb.get("settings")
    check("pgbench", "single-row INSERT transactions, 1 client", round(pg1), "tps", "-", None,
          {"latency_ms": pgb["c1"].get("latency_ms")})
    check("pgbench", "single-row INSERT transactions, 64 clients", round(pg64), "tps", "-", None,
          {"latency_ms": pgb["c64"].get("latency_ms")})

ceiling = load("ceiling")
if ceiling:
    check("ceiling", "GET /healthz, 64 conns", round(ceiling["c64"]["per_second"]), "req/s", "-", None)
    check("ceiling", "GET /healthz, 256 conns", round(ceiling["c256"]["per_second"]), "req/s", "-", None)

submit = load("submit")
if submit:
    for c in ("c64", "c256"):
        s = submit[c]
        r = ratio(s["per_second"], ceiling[c]["per_second"]) if ceiling else None
        top = c == "c64"
        check("submit", f"POST /v1/jobs, {c[1:]} conns", round(s["per_second"]), "jobs/s",
              (">= 0.40 x ceiling" + (f" (now {r})" if r is not None else " (no ceiling part)")) if top
              else (f"- ({r} x ceiling)" if r is not None else "-"),
              at_least(r, 0.40) if top else None, {"ratio_to_ceiling": r})
        if c == "c64" and backend == "pg":
            rp = ratio(s["per_second"], pg64)
            check("submit", "  the same against pgbench, 64 clients", rp, "x",
                  f"- (pgbench {round(pg64):,} tps)" if pg64 else "- (no pgbench part)", None,
                  {"ratio_to_pgbench_c64": rp, "pgbench_c64_tps": pg64})
        check("submit", f"  latency p50 / p99, {c[1:]} conns", f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}", "ms",
              "-", None)

batch = load("batch")
if batch:
    v = round(batch["c4"]["per_second"] * batch["jobs_per_batch"])
    check("batch", "POST /v1/batches of 1,000", v, "jobs/s", ">= 100,000", v >= 100000)

e2e = load("e2e")
if e2e:
    v = e2e["per_second"]
    check("e2e", f"{e2e['succeeded']:,} no-op jobs, 64 submitters", round(v), "jobs/s", ">= 15,000", v >= 15000)

p = load("peers")
if p and backend == "pg":
    # One producer waiting for each 201: against one client's single-row
    # INSERT transactions on the same cluster.
    r = ratio(p["enqueue_per_s"], pg1)
    check("peers", "sequential durable enqueue", p["enqueue_per_s"], "jobs/s",
          f">= 0.8 x pgbench 1 client {pg1_txt}" + (f" (now {r})" if r is not None else ""), at_least(r, 0.8),
          {"ratio_to_pgbench_c1": r, "pgbench_c1_tps": pg1})
    check("peers", "  the same, per job", round(1e6 / p["enqueue_per_s"], 1), "µs", "-", None)
    check("peers", "enqueue bulk (batches of 1,000), 1 producer", p["enqueue_bulk_per_s"], "jobs/s", "-", None)
    check("peers", "end to end, 1 sequential producer", p["e2e_per_s"], "jobs/s", "-", None)
    txn_ms = pgb["c1"].get("latency_ms") if pgb else None
    rp50 = ratio(p["rtt_p50_ms"], txn_ms)
    check("peers", "round trip p50 (submit, long-poll to done)", p["rtt_p50_ms"], "ms",
          f"- ({rp50} x a pgbench 1-client transaction)" if rp50 is not None else "-", None,
          {"ratio_to_pgbench_c1_latency": rp50})
elif p:
    # One producer waiting for each 201: its cost per job against one fdatasync.
    per_job_us = round(1e6 / p["enqueue_per_s"], 1)
    r = ratio(per_job_us, fsync_us)
    check("peers", "sequential durable enqueue, per job", per_job_us, "µs",
          f"<= 1.3 x fdatasync {fsync_txt}" + (f" (now {r})" if r is not None else ""), at_most(r, 1.3),
          {"enqueue_per_s": p["enqueue_per_s"], "ratio_to_fdatasync": r})
    check("peers", "  the same, jobs/s", p["enqueue_per_s"], "jobs/s", "-", None)
    check("peers", "enqueue bulk (batches of 1,000), 1 producer", p["enqueue_bulk_per_s"], "jobs/s", "-", None)
    check("peers", "end to end, 1 sequential producer", p["e2e_per_s"], "jobs/s", "-", None)
    rp50 = ratio(p["rtt_p50_ms"] * 1000, fsync_us)
    check("peers", "round trip p50 (submit, long-poll to done)", p["rtt_p50_ms"], "ms",
          f"<= 2.2 x fdatasync {fsync_txt}" + (f" (now {rp50})" if rp50 is not None else ""), at_most(rp50, 2.2),
          {"ratio_to_fdatasync": rp50})
if p:  # either backend: the tail against its own p50, and the durability it ran with
    rp99 = ratio(p["rtt_p99_ms"], p["rtt_p50_ms"])
    check("peers", "round trip p99", p["rtt_p99_ms"], "ms", f"<= 4 x p50 (now {rp99})", at_most(rp99, 4),
          {"ratio_to_p50": rp99})
    if p.get("sync") and p["sync"] != "full":
        check("peers", f"  jobqd ran with --sync {p['sync']}", "-", "", "--sync full", False)

x = load("external")
if x:
    ex = f"{x['n']:,} Python no-op jobs, 1 producer, 2 worker processes"
    if p:
        rx = ratio(x["e2e_per_s"], p["e2e_per_s"])
        check("external", ex, x["e2e_per_s"], "jobs/s", f"- ({rx} x internal workers)", None)
    else:
        check("external", ex, x["e2e_per_s"], "jobs/s", "-", None)
    check("external", "lease round trip p50, a job ready", x["lease_ready_p50_ms"], "ms", "<= 1",
          x["lease_ready_p50_ms"] <= 1)
    check("external", "  woken by a submit, from sending it, p50", x["lease_woken_p50_ms"], "ms", "-", None)

w = load("waiters")
if w:
    ms = w["last_answer_after_finish_ms"]
    check("waiters", f"{w['answered']:,} long-polls: last answer after the job ended", ms, "ms", "<= 50",
          ms <= 50)
    kb = round(w["kb_per_waiter"], 1)
    check("waiters", "  RSS per waiter", kb, "KB", "<= 10", kb <= 10)

g = load("growth")
if g:
    levels = g["levels"]
    empty = next((lv for lv in levels if lv["rows"] == 0), None)
    base = empty["submit"]["per_second"] if empty else None
    finished = [lv for lv in levels if lv.get("state", "finished") == "finished" and lv["rows"] > 0]
    top = max(finished, key=lambda lv: lv["rows"]) if finished else None
    for lv in levels:
        state = lv.get("state", "finished")
        r = ratio(lv["submit"]["per_second"], base)
        target = lv is top or (state == "queued" and lv["rows"] > 0)
        label = "empty" if lv["rows"] == 0 else f"{lv['rows']:,} rows {state}"
        check("growth", f"{label}: submit, 64 conns", round(lv["submit"]["per_second"]), "jobs/s",
              (">= 0.8 x empty" + (f" (now {r})" if r is not None else " (no empty level)")) if target
              else (f"- ({r} x empty)" if r is not None and lv["rows"] else "-"),
              at_least(r, 0.8) if target else None, {"ratio_to_empty": r, "state": state})
        if "get" in lv:
            check("growth", f"{label}: GET /v1/jobs/{{id}} p50 / p99",
                  f"{lv['get']['p50_ms']:.2f} / {lv['get']['p99_ms']:.2f}", "ms", "-", None)

b = load("backlog")
if b:
    v = b["per_second"]
    check("backlog", f"{b['jobs']:,} queued no-op jobs drain, --workers {b['workers']}", round(v), "jobs/s",
          ">= 10,000", v >= 10000, {"drain_s": b["drain_s"]})

s = load("soak")
if s:
    r = ratio(s["exec_per_s"], s["submit_per_s"])
    check("soak", f"{s['seconds']:g} s of 64 submitters: executed", round(s["exec_per_s"]), "jobs/s",
          f">= 0.5 x submitted {round(s['submit_per_s']):,}/s (now {r})", at_least(r, 0.5),
          {"submit_per_s": s["submit_per_s"], "ratio_to_submit": r})
    samples = s.get("samples") or []
    if samples:
        rss = [x["rss_kb"] for x in samples]
        wal = [x["wal_bytes"] for x in samples]
        queued = [x["queued"] for x in samples]
        check("soak", "  RSS first / max / last", f"{rss[0] // 1024} / {max(rss) // 1024} / {rss[-1] // 1024}",
              "MB", "-", None)
        check("soak", "  WAL first / max / last",
              f"{wal[0] / 1048576:.1f} / {max(wal) / 1048576:.1f} / {wal[-1] / 1048576:.1f}", "MB", "-", None)
        check("soak", "  queued at the end (max)", f"{queued[-1]:,} ({max(queued):,})", "jobs", "-", None)

o = load("outbound")
if o:
    secs = o["all_answered_ms"] / 1000
    check("outbound", f"{o['jobs']:,} http jobs (1 s each): wall", secs, "s", "about 1", secs <= 1.5)
    check("outbound", "  jobqd threads", o["jobqd_threads"], "", "few", None)

cl = load("cluster")
if cl:
    for t in cl["throughput"]:
        k = t["nodes"]
        label = f"{k} node{'s' if k > 1 else ''}: {t['succeeded']:,} no-op jobs, 64 conns across them"
        check("cluster", label, round(t["per_second"]), "jobs/s",
              "-" if k == 1 else f"- ({t['ratio_to_1']} x 1 node)", None,
              {"nodes": k, "ratio_to_1": t["ratio_to_1"]})
        if t.get("submit_errors") or t.get("stalled") or t.get("deadlocks"):
            check("cluster", f"  {k} nodes: submits refused / deadlocks / left running",
                  f"{t['submit_errors']:,} / {t['deadlocks']:,} / {t['left_running']:,}", "", "0 / 0 / 0", False)
    for c in cl["claim"]:
        k = c["nodes"]
        where = "on the same node, alone" if c["where"] == "local" else f"on another node, {k} nodes"
        target = "-" if c["where"] == "local" else "p99 <= 50 (issue 14)"
        check("cluster", f"claim latency p50 / p99, {where}", f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f}", "ms",
              target if k == 1 else f"{target}; p50 {c['p50_ratio_to_1']} x 1 node",
              None if c["where"] == "local" else c["p99_ms"] <= 50,
              {"nodes": k, "where": c["where"], "p50_ms": c["p50_ms"], "p99_ms": c["p99_ms"],
               "samples": c["samples"]})

stamps = []
for name in PARTS:
    v = load(name)
    if v is not None:
        res["parts"][name] = v
        stamps.append(os.path.getmtime(os.path.join(parts_dir, name + ".json")))
if stamps:
    res["parts_written"] = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in (min(stamps), max(stamps))]
with open(out_path, "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")


def show(value):
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


settings = res.get("settings") or {}
head = f"backend: {backend}"
if settings:
    head += (f" (PostgreSQL {settings.get('server_version', '?').split()[0]}, fsync={settings.get('fsync')}, "
             f"synchronous_commit={settings.get('synchronous_commit')}, "
             f"wal_sync_method={settings.get('wal_sync_method')}; a private cluster, a fresh schema per part)")
def cluster_note():
    la = cl["loadavg"]
    return (f"cluster: {cl['note']}. Each node: {cl['workers_per_node']} workers (the default). "
            f"Load average (1/5/15 min) at the start {' '.join(la['start'])}, after the throughput runs "
            f"{' '.join(la['after_throughput'])}, at the end {' '.join(la['end'])}.")


if markdown:
    print(head)
    print()
    print("| part | figure | value | unit | target | met |")
    print("| --- | --- | ---: | --- | --- | --- |")
    for area, name, value, unit, target, verdict in rows:
        print(f"| {area} | {name} | {show(value)} | {unit} | {target} | {verdict} |")
    if cl:
        print()
        print(cluster_note())
    sys.exit(0)
w1 = max(len(r[1]) for r in rows) if rows else 10
w2 = max([len(r[4]) for r in rows] + [6])
wv = max([len(show(r[2])) for r in rows] + [5])
print(head)
print(f"{'area':<9} {'figure':<{w1}} {'value':>{wv}} {'unit':<7} {'target':<{w2}} verdict")
for area, name, value, unit, target, verdict in rows:
    print(f"{area:<9} {name:<{w1}} {show(value):>{wv}} {unit:<7} {target:<{w2}} {verdict}")
if machine:
    print(f"machine: {machine['cores']} cores, {machine['cpu']}, fdatasync {fds:,}/s")
if cl:
    print(cluster_note())
if stamps:
    print(f"parts written {res['parts_written'][0]} .. {res['parts_written'][1]}")
print(f"wrote {out_path}")

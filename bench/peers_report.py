"""peers_report.py [--names F] [--durable LIST] [--started T] [--command C] [--n N]
                  [--external EXTERNAL_JSON] [--jobq-pg JSON --pgbench JSON --pg-settings JSON]
                  PEERS_JSONL FSYNC_JSON JOBQ_JSON OUT_JSON

Joins one sitting of make bench-peers: the peers harness's results (a
_machine line, then one line per peer, in the order of the names in F),
the fdatasync probe taken right before jobq, and jobq_peer.py's figures.
Prints one Markdown table, every figure with jobq / that figure beside it,
and a last row for the best durable peer of each column; writes it all to
OUT_JSON. Every durability text is the server's own report (the harness
reads the peers' live settings, jobq_peer.py reads GET /v1/info).
With --external (bench/external/run.py's figures: Python functions run by
2 `python -m jobq worker` processes over the lease API), a second table sets
that end to end beside RQ's and Celery's, the peers that run Python
functions, against issue 12's targets (at least 2x the best of them; lease
round trip p50 at most 1 ms). Figures, never assertions.

With --jobq-pg (jobq_peer.py's figures against a jobqd on PostgreSQL, on a
private cluster with the server's default durability), jobq on PostgreSQL
gets its own row, its durability setting with the server's (--pg-settings),
and a second table against pg-boss for every figure (issue 13's target: at
least 3x pg-boss on each, which for the round trips means a third of the
time), then pgbench's single-client single-row INSERT rate on the same
cluster (--pgbench) and jobq-on-pg's sequential enqueue as a ratio of it
(target at least 0.8). JOBQ_JSON is "-" when jobq did not run on SQLite."""
import argparse
import json

COLS = [  # (key, header, lower is better)
    ("enqueue_per_s", "enqueue/s", False),
    ("enqueue_bulk_per_s", "bulk enqueue/s", False),
    ("e2e_per_s", "e2e/s", False),
    ("rtt_p50_ms", "rtt p50 ms", True),
    ("rtt_p99_ms", "rtt p99 ms", True),
]

ap = argparse.ArgumentParser()
ap.add_argument("--names", help="file: the harness names asked for, one a line, in run order")
ap.add_argument("--durable", default="celery aof,rq aof,bullmq aof,pgboss,beanstalkd wal",
                help="comma-separated harness names whose ack is fsynced")
ap.add_argument("--started", default=None)
ap.add_argument("--command", default="make bench-peers")
ap.add_argument("--n", type=int, default=None, help="PEERBENCH_N, jobs per workload")
ap.add_argument("--external", default=None, help="bench/external/run.py's JSON")
ap.add_argument("--jobq-pg", default=None, help="jobq_peer.py's JSON against jobqd on PostgreSQL")
ap.add_argument("--pgbench", default=None, help="pgbench's single-client INSERT figures on jobq's cluster")
ap.add_argument("--pg-settings", default=None, help="that cluster's settings (fsync, synchronous_commit, ...)")
ap.add_argument("peers_jsonl")
ap.add_argument("fsync_json")
ap.add_argument("jobq_json")
ap.add_argument("out_json")
a = ap.parse_args()

lines = []
with open(a.peers_jsonl) as f:
    for line in f:
        line = line.strip()
        if line:
            lines.append(json.loads(line))
machine = next((d for d in lines if d.get("peer") == "_machine"), {})
peers = [d for d in lines if d.get("peer") != "_machine"]
names = []
if a.names:
    with open(a.names) as f:
        names = [n.strip() for n in f if n.strip()]
durable_names = {n.strip() for n in a.durable.split(",") if n.strip()}
for i, p in enumerate(peers):
    p["harness_name"] = names[i] if i < len(names) else p.get("peer")
    p["durable"] = p["harness_name"] in durable_names
with open(a.fsync_json) as f:
    probe = json.load(f)


def load(path):
    if not path or path == "-":
        return None
    with open(path) as f:
        return json.load(f)


jobq_sqlite = load(a.jobq_json)
jobq_pg = load(a.jobq_pg)
pgbench = load(a.pgbench)
pg_settings = load(a.pg_settings) or {}
if jobq_pg:
    jobq_pg["peer"] = "jobq on PostgreSQL"
    if pg_settings:
        # The server's own settings join jobqd's setting, before its colon.
        server = (f"PostgreSQL {pg_settings.get('server_version', '?').split()[0]} fsync={pg_settings.get('fsync')} "
                  f"synchronous_commit={pg_settings.get('synchronous_commit')} "
                  f"wal_sync_method={pg_settings.get('wal_sync_method')}")
        head, _, tail = (jobq_pg.get("durability") or "").partition(":")
        jobq_pg["durability"] = f"{head}, {server}:{tail}"
        jobq_pg["server_settings"] = pg_settings
# The peers' ratios are taken against jobq on SQLite, or on PostgreSQL when
# only that ran.
jobq = jobq_sqlite or jobq_pg or {}


def ratio(key, peer_value):
    """jobq / peer: above 1 jobq does more per second, below 1 it waits less."""
    mine = jobq.get(key)
    if mine is None or not peer_value:
        return None
    return round(mine / peer_value, 4)


def best(key, low):
    vals = [(p[key], p["peer"]) for p in peers if p["durable"] and p.get(key) is not None]
    if not vals:
        return None
    v, who = (min if low else max)(vals)
    return {"value": v, "peer": who, "jobq_ratio": ratio(key, v)}


def num(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v < 100:
        return f"{v:.2f}"
    return f"{round(v):,}"


def setting(durability):
    """The setting part of a durability text: what comes before its first colon."""
    if not durability:
        return "-"
    return durability.split(":", 1)[0]


for p in peers:
    p["jobq_ratio"] = {k: ratio(k, p.get(k)) for k, _, _ in COLS}
bests = {k: best(k, low) for k, _, low in COLS}

res = {
    "command": a.command,
    "started": a.started,
    "jobs_per_workload": a.n,
    "fdatasync_per_s": {"harness_start": machine.get("fdatasync_per_s"),
                        "before_jobq": probe.get("fdatasync_per_s")},
    "machine": machine,
    "loadavg_before_jobq": probe.get("loadavg"),
    "jobq": jobq_sqlite,
    "jobq_pg": jobq_pg,
    "pgbench_c1": pgbench,
    "peers": peers,
    "best_durable_peer": bests,
    "ratio_meaning": "jobq / peer: above 1 jobq is faster for the rates; below 1 jobq is faster for rtt",
}
with open(a.out_json, "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")

n = res["jobs_per_workload"]
print(f"Against the peers, one sitting, started {a.started or '?'} ({a.command}); "
      f"N = {int(n):,} jobs per workload, {jobq.get('rtt_n', '?')} round trips" if n else
      f"Against the peers, one sitting, started {a.started or '?'} ({a.command})")
print(f"machine: {machine.get('cores', '?')} cores, {machine.get('cpu', '?')}; fdatasync/s "
      f"{num(machine.get('fdatasync_per_s'))} before the peers, {num(probe.get('fdatasync_per_s'))} "
      f"before jobq; loopback rtt p50 {machine.get('loopback_rtt_p50_us', '?')} µs")
for j in (jobq_sqlite, jobq_pg):
    if j and j.get("sync") != "full":
        print(f"note: {j['peer']}: jobqd ran with --sync {j.get('sync')}: its 201 is not durable, unlike the "
              "durable peers'")
print()
hdr = ["system", "durability setting"] + [h for _, h, _ in COLS]
print("| " + " | ".join(hdr) + " |")
print("| " + " | ".join(["---", "---"] + ["---:"] * len(COLS)) + " |")
for j in (jobq_sqlite, jobq_pg):
    if j:
        print(f"| **{j['peer']}** | " + setting(j.get("durability")) + " | "
              + " | ".join(f"**{num(j.get(k))}**" for k, _, _ in COLS) + " |")
for p in peers:
    if any(k.startswith("error") for k in p):
        errs = "; ".join(f"{k}: {v}" for k, v in p.items() if k.startswith("error"))
        print(f"| {p['peer']} | failed: {errs[:120]} | " + " | ".join("-" for _ in COLS) + " |")
        continue
    cells = []
    for k, _, _ in COLS:
        r = p["jobq_ratio"][k]
        cells.append(num(p.get(k)) + (f" ({r:.3g}×)" if r is not None else ""))
    mark = "" if p["durable"] else " (not durable)"
    print(f"| {p['peer']}{mark} | {setting(p.get('durability'))} | " + " | ".join(cells) + " |")
cells = []
for k, _, _ in COLS:
    b = bests[k]
    cells.append("-" if b is None else f"{num(b['value'])} {b['peer'].split('(')[0]} ({b['jobq_ratio']:.3g}×)"
                 if b["jobq_ratio"] is not None else f"{num(b['value'])} {b['peer'].split('(')[0]}")
print("| best durable peer | | " + " | ".join(cells) + " |")
print()
print(f"(n×) = {jobq.get('peer', 'jobq')} / that figure: above 1 jobq is faster for the rates, below 1 it is "
      "faster for rtt.")
print("What each ack guarantees, as each server reports it:")
for d in [j for j in (jobq_sqlite, jobq_pg) if j] + peers:
    print(f"- {d['peer']}: {d.get('durability') or '-'}")
if jobq_pg:
    boss = next((p for p in peers if p.get("harness_name") == "pgboss" or p.get("peer") == "pg-boss"), None)
    vs = {}
    print()
    print("jobq on PostgreSQL against pg-boss, same sitting (target: at least 3x pg-boss on every figure; "
          "for the round trips, at most a third of its time):")
    print()
    print("| figure | jobq on PostgreSQL | pg-boss | jobq's advantage | >= 3x |")
    print("| --- | ---: | ---: | ---: | --- |")
    for k, h, low in COLS:
        mine, theirs = jobq_pg.get(k), (boss or {}).get(k)
        adv = None
        if mine and theirs:
            adv = round(theirs / mine if low else mine / theirs, 3)
        vs[k] = {"jobq_pg": mine, "pgboss": theirs, "advantage": adv, "met": None if adv is None else adv >= 3}
        print(f"| {h} | {num(mine)} | {num(theirs)} | {'-' if adv is None else f'{adv:.3g}x'} | "
              f"{'-' if adv is None else ('met' if adv >= 3 else 'missed')} |")
    if not boss:
        print()
        print("(pg-boss was not in this sitting: PEERS had no pgboss)")
    jobq_pg["vs_pgboss"] = vs
    if pgbench:
        tps, enq = pgbench.get("tps"), jobq_pg.get("enqueue_per_s")
        r = round(enq / tps, 3) if tps and enq else None
        jobq_pg["ratio_to_pgbench_c1"] = r
        print()
        print(f"pgbench on jobq's cluster, same sitting: 1 client, single-row INSERT transactions for "
              f"{pgbench.get('seconds')} s: {num(tps)} tps ({pgbench.get('latency_ms')} ms each); jobq on "
              f"PostgreSQL's sequential enqueue {num(enq)}/s = {r}x of it (target >= 0.8: "
              f"{'-' if r is None else ('met' if r >= 0.8 else 'missed')})")
    with open(a.out_json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
if a.external and a.external != "-":
    with open(a.external) as f:
        ext = json.load(f)
    py = [p for p in peers if p["peer"].split("(")[0].split("+")[0] in ("rq", "celery") and p.get("e2e_per_s")]
    best = max(py, key=lambda p: p["e2e_per_s"], default=None)
    print()
    print("Your own Python functions, end to end (one producer, 2 worker processes):")
    print()
    print("| system | e2e/s | jobq / it |")
    print("| --- | ---: | ---: |")
    print(f"| **jobq, python workers over the lease API** | **{num(ext.get('e2e_per_s'))}** | |")
    for p in py:
        print(f"| {p['peer']} | {num(p['e2e_per_s'])} | {ext['e2e_per_s'] / p['e2e_per_s']:.3g}× |")
    if best:
        r = ext["e2e_per_s"] / best["e2e_per_s"]
        print(f"target: >= 2x the best of them ({best['peer']}): {r:.3g}x, {'met' if r >= 2 else 'missed'}")
    lp = ext.get("lease_ready_p50_ms")
    print(f"lease round trip, a job ready: p50 {lp} ms, p99 {ext.get('lease_ready_p99_ms')} ms "
          f"(target p50 <= 1 ms: {'met' if lp is not None and lp <= 1 else 'missed'}); "
          f"a waiting lease woken by a submit: p50 {ext.get('lease_woken_p50_ms')} ms from sending the submit")
    res["external"] = ext
    with open(a.out_json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
print(f"wrote {a.out_json}")

"""report.py PARTS_DIR OUT_JSON: joins bench.sh's parts into one table.

Prints each figure next to its target (from the project's benchmark issue)
and the ceiling or peer it is measured against, and writes every figure,
target and ratio to OUT_JSON. Missing parts are left out; nothing here
asserts: a missed target is reported as "miss"."""
import json
import os
import sys

parts_dir, out_path = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))


def load(name):
    try:
        with open(os.path.join(parts_dir, name + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


with open(os.path.join(here, "peers", "peers-2026-11-21.json")) as f:
    peers = json.load(f)
durable = [p for p in peers["peers"] if p["durable"]]


def best(key, among, low=False):
    vals = [(p[key], p["peer"]) for p in among if p.get(key) is not None]
    return (min if low else max)(vals) if vals else (None, None)


rows = []   # (area, figure, value, unit, target text, verdict)
res = {"parts": {}, "checks": []}


def check(area, name, value, unit, target, ok, against=None):
    verdict = "-" if ok is None else ("ok" if ok else "miss")
    rows.append((area, name, value, unit, target, verdict))
    res["checks"].append({"area": area, "figure": name, "value": value, "unit": unit,
                          "target": target, "met": ok, "against": against})


machine = load("machine")
ceiling = load("ceiling")
if ceiling:
    check("ceiling", "GET /healthz, 64 conns", round(ceiling["c64"]["per_second"]), "req/s", "-", None)
    check("ceiling", "GET /healthz, 256 conns", round(ceiling["c256"]["per_second"]), "req/s", "-", None)

submit = load("submit")
if submit:
    for c in ("c64", "c256"):
        s = submit[c]
        ratio = round(s["per_second"] / ceiling[c]["per_second"], 3) if ceiling else None
        check("submit", f"POST /v1/jobs, {c[1:]} conns", round(s["per_second"]), "jobs/s",
              ">= 0.40 x ceiling" if c == "c64" else "-",
              (ratio >= 0.40) if (ratio is not None and c == "c64") else None,
              {"ratio_to_ceiling": ratio})
        check("submit", f"  latency p50 / p99, {c[1:]} conns", f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}", "ms", "-", None)

batch = load("batch")
if batch:
    v = round(batch["c4"]["per_second"] * batch["jobs_per_batch"])
    check("batch", "POST /v1/batches of 1,000", v, "jobs/s", ">= 150,000", v >= 150000,
          {"best_peer_bulk": best("enqueue_bulk_per_s", peers["peers"])})

e2e = load("e2e")
if e2e:
    v = e2e["per_second"]
    check("e2e", f"{e2e['succeeded']:,} no-op jobs, 64 submitters", round(v), "jobs/s", ">= 25,000", v >= 25000)

p = load("peers")
if p:
    fds = machine["fdatasync_per_s"] if machine else peers["machine"]["fdatasync_per_s"]
    be, bp = best("enqueue_per_s", durable)
    v = p["enqueue_per_s"]
    check("peers", "enqueue, 1 sequential producer", v, "jobs/s",
          f">= {be:,} ({bp}) and >= 0.8 x {fds:,} fdatasync/s", v >= be and v >= 0.8 * fds,
          {"best_durable_peer": [be, bp], "ratio_to_fdatasync": round(v / fds, 3)})
    bb, bbp = best("enqueue_bulk_per_s", peers["peers"])
    check("peers", "enqueue bulk (batches of 1,000)", p["enqueue_bulk_per_s"], "jobs/s",
          f"- (best peer {bb:,}, {bbp})", None)
    ee, ep = best("e2e_per_s", durable)
    v = p["e2e_per_s"]
    check("peers", "end to end, 1 sequential producer", v, "jobs/s", f">= 1.5 x {ee:,} ({ep})", v >= 1.5 * ee,
          {"best_durable_peer": [ee, ep]})
    check("peers", "round trip p50", p["rtt_p50_ms"], "ms", "<= 0.7", p["rtt_p50_ms"] <= 0.7)
    check("peers", "round trip p99", p["rtt_p99_ms"], "ms", "<= 2", p["rtt_p99_ms"] <= 2)

w = load("waiters")
if w:
    kb = round(w["kb_per_waiter"], 1)
    check("waiters", f"{w['answered']:,} long-polls: RSS per waiter", kb, "KB", "<= 10", kb <= 10)
    ms = w["last_answer_after_finish_ms"]
    check("waiters", "  last answer after the job finished", ms, "ms", "<= 50", ms <= 50)

g = load("growth")
if g:
    base = g["levels"][0]["submit"]["per_second"]
    for lv in g["levels"]:
        ratio = round(lv["submit"]["per_second"] / base, 3)
        top = lv is g["levels"][-1] and lv["rows"] > 0
        check("growth", f"{lv['rows']:,} rows: submit, 64 conns", round(lv["submit"]["per_second"]), "jobs/s",
              ">= 0.8 x empty" if top else "-", (ratio >= 0.8) if top else None, {"ratio_to_empty": ratio})
        check("growth", f"{lv['rows']:,} rows: GET /v1/jobs/{{id}} p50 / p99",
              f"{lv['get']['p50_ms']:.2f} / {lv['get']['p99_ms']:.2f}", "ms", "-", None)

o = load("outbound")
if o:
    s = o["all_answered_ms"] / 1000
    check("outbound", f"{o['jobs']:,} http jobs (1 s each): wall", s, "s", "about 1", s <= 1.5)
    check("outbound", "  jobqd threads", o["jobqd_threads"], "", "few", None)

for name in ("machine", "ceiling", "submit", "batch", "e2e", "peers", "waiters", "growth", "outbound"):
    v = load(name)
    if v is not None:
        res["parts"][name] = v
res["peers"] = peers
with open(out_path, "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")

w1 = max(len(r[1]) for r in rows) if rows else 10
print(f"{'area':<9} {'figure':<{w1}} {'value':>14} {'unit':<7} {'target':<44} verdict")
for area, name, value, unit, target, verdict in rows:
    sval = f"{value:,}" if isinstance(value, (int, float)) else str(value)
    print(f"{area:<9} {name:<{w1}} {sval:>14} {unit:<7} {target:<44} {verdict}")
if machine:
    print(f"machine: {machine['cores']} cores, {machine['cpu']}, fdatasync {machine['fdatasync_per_s']:,}/s")
print(f"wrote {out_path}")

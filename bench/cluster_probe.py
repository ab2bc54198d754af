"""Claim latency: how long a job submitted on one node waits until a worker
(on whichever node claims it) starts it.

One probe at a time over one keep-alive connection to the node on PORT:
note the time, POST a no-op (echo) job, then long-poll it on the same node
until it has ended. The probe's latency is the job's started_at (written by
the worker that ran it, set when the worker really started it) minus the
time the POST was sent. Both are this machine's realtime clock; started_at
has millisecond resolution, so each sample reads up to 1 ms low. The next
probe goes out when the last has ended, so every probe finds the nodes
idle.

Probes sent during the first --warmup seconds are not counted: a node that
just joined is seen by the others at their next heartbeat (each node sends
its wake-up notices only while it knows of another node alive), and the
warm-up covers that.

Prints one JSON object: the samples' p50, p90, p99, max and mean in ms,
the submit's own round trip p50 and p99 (POST to 201), and the counts.
Exits 1 when a probe does not end within --timeout seconds.

usage: cluster_probe.py PORT N [--warmup S] [--queue Q] [--timeout S]"""
import argparse
import calendar
import http.client
import json
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("n", type=int)
ap.add_argument("--warmup", type=float, default=0)
ap.add_argument("--queue", default="probe")
ap.add_argument("--timeout", type=float, default=30)
a = ap.parse_args()

conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=a.timeout + 5)
body = json.dumps({"type": "echo", "queue": a.queue, "payload": {}})
hdrs = {"Content-Type": "application/json"}


def ms_of(rfc3339):
    """2026-11-21T13:05:11.042Z as unix ms."""
    base, frac = rfc3339.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac[:3].ljust(3, "0"))


def probe():
    t_send = time.time()
    conn.request("POST", "/v1/jobs", body, hdrs)
    resp = conn.getresponse()
    job = json.loads(resp.read())
    rtt = (time.time() - t_send) * 1000
    if resp.status != 201:
        sys.exit(f"cluster_probe: POST /v1/jobs answered {resp.status}: {job}")
    deadline = time.monotonic() + a.timeout
    while job["state"] not in ("succeeded", "failed", "canceled"):
        if time.monotonic() >= deadline:
            sys.exit(f"cluster_probe: job {job['id']} still {job['state']} after {a.timeout} s")
        conn.request("GET", f"/v1/jobs/{job['id']}?wait={a.timeout:g}")
        resp = conn.getresponse()
        job = json.loads(resp.read())
        if resp.status != 200:
            sys.exit(f"cluster_probe: GET /v1/jobs/{{id}} answered {resp.status}: {job}")
    if job["state"] != "succeeded" or not job.get("started_at"):
        sys.exit(f"cluster_probe: job {job['id']} ended {job['state']}")
    return ms_of(job["started_at"]) - t_send * 1000, rtt


warm_until = time.monotonic() + a.warmup
warm = 0
while time.monotonic() < warm_until:
    probe()
    warm += 1
lat, rtts = [], []
for _ in range(a.n):
    l, r = probe()
    lat.append(l)
    rtts.append(r)
lat.sort()
rtts.sort()


def pct(xs, q):
    return round(xs[min(len(xs) - 1, int(len(xs) * q))], 2)


print(json.dumps({"samples": len(lat), "warmup_probes": warm,
                  "p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "p99_ms": pct(lat, 0.99),
                  "max_ms": round(lat[-1], 2), "mean_ms": round(sum(lat) / len(lat), 2),
                  "submit_rtt_p50_ms": pct(rtts, 0.5), "submit_rtt_p99_ms": pct(rtts, 0.99)}))

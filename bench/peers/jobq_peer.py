"""The peers' three workloads against jobqd, with the peers' producer shape.

One sequential producer over one keep-alive HTTP/1.1 connection, no-op
jobs, N = PEERBENCH_N (20000). Like the peers' beanstalkd client it is a
small raw-socket client (http.client costs more per call than the server
does per request here):
  enqueue  N single POST /v1/jobs, each waiting for its 201, with the queue
           paused so that no worker runs; then the same N as POST /v1/batches
           of 1,000 (the bulk API).
  e2e      2 idle workers; N single submits; from the first submit until the
           queue's own counts say N jobs succeeded.
  rtt      300 sequential round trips (20 unmeasured first): submit, then
           GET /v1/jobs/{id}?wait=30 until the job is finished.
Prints one JSON object with the peers' field names; its durability is
what jobqd's GET /v1/info says a 201 guarantees.

usage: jobq_peer.py PORT"""
import json
import os
import sys
import time

from rawhttp import Http

PORT = int(sys.argv[1])
N = int(os.environ.get("PEERBENCH_N", "20000"))
RTT_N = int(os.environ.get("PEERBENCH_RTT_N", "300"))
WARMUP = int(os.environ.get("PEERBENCH_WARMUP", "20"))
now = time.perf_counter
JOB = json.dumps({"type": "echo", "queue": "peers", "payload": {}})


conn = Http(PORT)


def call(method, path, body=None, expect=(200,)):
    status, data = conn.request(method, path, body)
    if status not in expect:
        raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
    return json.loads(data) if data else None


def submit():
    return call("POST", "/v1/jobs", JOB, (201,))["id"]


def counts():
    return call("GET", "/v1/queues/peers")["counts"]


def wait_until(cond, deadline_s, what):
    end = now() + deadline_s
    while not cond():
        if now() > end:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.01)


def pct(sorted_vals, p):
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


health = call("GET", "/healthz")
# The guarantee comes from the server under test, never from this script.
info = call("GET", "/v1/info")
out = {"peer": "jobq",
       "durability": f"jobqd {info['version']} on {info['backend']}, --sync {info['durability']['sync']}: "
                     f"{info['durability']['ack']}; a job whose worker dies is requeued at the next start "
                     "(at-least-once)",
       "sync": info["durability"]["sync"],
       "workers": "2 worker threads in jobqd (--workers 2)",
       "notes": "e2e done = the queue's succeeded count; rtt = POST /v1/jobs then GET /v1/jobs/{id}?wait=30"}

# enqueue: no worker may take the jobs, so the queue is paused.
submit()  # creates the queue
call("POST", "/v1/queues/peers/pause")
base = counts()["queued"]
t0 = now()
for _ in range(N):
    submit()
dt = now() - t0
queued = counts()["queued"] - base
batch = json.dumps({"jobs": [json.loads(JOB)] * 1000})
batches = max(1, N // 1000)  # one at least, so a short run (N < 1000) measures it too
t1 = now()
for _ in range(batches):
    call("POST", "/v1/batches", batch, (201,))
dtb = now() - t1
out.update({
    "enqueue_per_s": round(N / dt), "enqueue_s": round(dt, 3),
    "enqueue_api": "POST /v1/jobs per job over one keep-alive connection, waiting for each 201; "
                   "bulk = POST /v1/batches of 1000 jobs per call",
    "enqueue_bulk_per_s": round(batches * 1000 / dtb),
    "enqueue_check": f"{queued} / {N} jobs queued",
})

# e2e: let the queued jobs drain first, so the workers are idle.
call("POST", "/v1/queues/peers/resume")
wait_until(lambda: counts()["queued"] == 0 and counts()["running"] == 0, 300, "queue drained")
done0 = counts()["succeeded"]
t0 = now()
for _ in range(N):
    submit()
t_enq = now() - t0
wait_until(lambda: counts()["succeeded"] >= done0 + N, 600, "all jobs succeeded")
dt = now() - t0
out.update({"e2e_per_s": round(N / dt), "e2e_wall_s": round(dt, 3), "e2e_enqueue_phase_s": round(t_enq, 3)})


# rtt: submit, then a long-poll until the job is finished.
def roundtrip():
    job_id = submit()
    job = call("GET", f"/v1/jobs/{job_id}?wait=30")
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['state']}")


for _ in range(WARMUP):
    roundtrip()
samples = []
for _ in range(RTT_N):
    t = now()
    roundtrip()
    samples.append((now() - t) * 1000.0)
ms = sorted(samples)
out.update({"rtt_p50_ms": round(pct(ms, 50), 3), "rtt_p99_ms": round(pct(ms, 99), 3),
            "rtt_max_ms": round(ms[-1], 3), "rtt_n": len(ms)})
print(json.dumps(out))

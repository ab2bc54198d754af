"""External workers, end to end: the peers' e2e shape with Python functions.

One sequential producer (one keep-alive connection, each POST /v1/jobs
waiting for its 201) submits N no-op jobs to the external queue py.bench;
2 worker processes (`python -m jobq worker`, one slot each, the same count
as the peers' harness gives RQ and Celery) lease and complete them. e2e/s =
N / time from the first submit until the queue's counts say N succeeded.
Then the lease round trip, over one more connection (each leased job is
completed afterwards, outside the timing):
  ready    POST /v1/leases while a job is ready: request to answer
  woken    a lease waiting (wait_s) while the producer submits: from
           sending the submit until the lease answers (the submit's
           fsynced commit is inside it)
Prints one JSON object. jobqd must run with --external-queue 'py.*'.

usage: run.py PORT   (PYTHONPATH must reach clients/python and the repo)"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
from rawhttp import Http  # noqa: E402

PORT = int(sys.argv[1])
N = int(os.environ.get("PEERBENCH_N", "20000"))
RTT_N = int(os.environ.get("PEERBENCH_RTT_N", "300"))
now = time.perf_counter
URL = f"http://127.0.0.1:{PORT}"


def call(conn, method, path, body=None, expect=(200,)):
    status, data = conn.request(method, path, json.dumps(body) if body is not None else None)
    if status not in expect:
        raise RuntimeError(f"{method} {path}: {status} {data[:200]!r}")
    return json.loads(data) if data else None


def pct(vals, p):
    vals = sorted(vals)
    return vals[max(0, min(len(vals) - 1, int(round(p / 100.0 * len(vals) + 0.5)) - 1))]


producer = Http(PORT)
job = {"type": "noop", "queue": "py.bench", "payload": {"args": [], "kwargs": {}}}


def succeeded(queue):
    return call(producer, "GET", f"/v1/queues/{queue}")["counts"]["succeeded"]


workers = [subprocess.Popen([sys.executable, "-m", "jobq", "worker", "--url", URL, "--queue", "py.bench",
                             "--concurrency", "1", "bench.external.noop_worker:worker"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
try:
    # Warm up: both workers are leasing once a first job came back.
    call(producer, "POST", "/v1/jobs", job, (201,))
    end = now() + 60
    while succeeded("py.bench") < 1:
        if now() > end:
            raise TimeoutError("the workers did not start")
        time.sleep(0.01)
    base = succeeded("py.bench")
    t0 = now()
    for _ in range(N):
        call(producer, "POST", "/v1/jobs", job, (201,))
    t_enq = now() - t0
    end = now() + 900
    while succeeded("py.bench") < base + N:
        if now() > end:
            raise TimeoutError("the jobs did not all succeed")
        time.sleep(0.01)
    e2e_s = now() - t0
finally:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait(timeout=60)

# Lease round trips on a queue no worker serves.
lessee = Http(PORT)
rjob = dict(job, queue="py.rtt")


def lease(wait_s):
    """Leases one job; returns it and when its answer arrived."""
    got = call(lessee, "POST", "/v1/leases", {"queues": ["py.rtt"], "max": 1, "wait_s": wait_s})["jobs"]
    return got, now()


def complete(got):
    for j in got:
        call(lessee, "POST", f"/v1/jobs/{j['id']}/complete", {"lease_id": j["lease_id"], "result": None})
    return len(got)


ready = []
for _ in range(RTT_N):
    call(producer, "POST", "/v1/jobs", rjob, (201,))
    t = now()
    got, t_leased = lease(0)
    ready.append((t_leased - t) * 1000)
    assert complete(got) == 1

woken = []
for _ in range(RTT_N):
    box = {}
    th = threading.Thread(target=lambda: box.update(zip(("got", "t"), lease(10))))
    th.start()
    time.sleep(0.002)  # pacing: lets the lease request reach jobqd and wait
    t = now()
    call(producer, "POST", "/v1/jobs", rjob, (201,))
    th.join(15)
    assert complete(box.get("got", [])) == 1
    woken.append((box["t"] - t) * 1000)

print(json.dumps({
    "peer": "jobq (python workers)",
    "workers": "2 `python -m jobq worker` processes, one slot each, leasing over HTTP",
    "e2e_per_s": round(N / e2e_s), "e2e_wall_s": round(e2e_s, 3), "e2e_enqueue_phase_s": round(t_enq, 3), "n": N,
    "lease_ready_p50_ms": round(pct(ready, 50), 3), "lease_ready_p99_ms": round(pct(ready, 99), 3),
    "lease_woken_p50_ms": round(pct(woken, 50), 3), "lease_woken_p99_ms": round(pct(woken, 99), 3),
    "rtt_n": RTT_N,
}))

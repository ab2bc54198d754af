"""Waits until a queue holds at least N jobs and all of them have ended.

Polls GET /v1/queues/QUEUE every 20 ms over one keep-alive connection, so
the watcher costs the two shared cores next to nothing (a process started
per poll would take a good part of one). With --interrupt PID, sends that
process SIGINT once the queue holds N jobs (wrk knows only durations).
Prints one JSON object: when the queue first held N jobs and when the last
ended (unix ms), the jobs held and ended, and succeeded. Exits 1 after
--timeout seconds (default 900). With --stall S it gives up once the queue
held N jobs and no job has ended for S seconds: it prints the same object
with "stalled": true, ended_at_ms the time the last job ended and "running"
the jobs still running then, and exits 0 (the caller reports them).

usage: drain_wait.py PORT QUEUE N [--interrupt PID] [--timeout S] [--stall S]"""
import argparse
import http.client
import json
import os
import signal
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("queue")
ap.add_argument("n", type=int)
ap.add_argument("--interrupt", type=int)
ap.add_argument("--timeout", type=float, default=900)
ap.add_argument("--stall", type=float)
a = ap.parse_args()

conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
deadline = time.monotonic() + a.timeout
held_at = None
last_ended, last_change = -1, None
while time.monotonic() < deadline:
    conn.request("GET", f"/v1/queues/{a.queue}")
    resp = conn.getresponse()
    body = resp.read()
    counts = json.loads(body)["counts"] if resp.status == 200 else {}
    total = sum(counts.values())
    ended = sum(counts.get(k, 0) for k in ("succeeded", "failed", "canceled"))
    now = int(time.time() * 1000)
    if held_at is None and total >= a.n:
        held_at = now
        if a.interrupt:
            try:
                os.kill(a.interrupt, signal.SIGINT)
            except ProcessLookupError:
                pass
    if held_at is not None and ended >= total:
        print(json.dumps({"held_at_ms": held_at, "ended_at_ms": now, "total": total, "ended": ended,
                          "succeeded": counts.get("succeeded", 0)}))
        sys.exit(0)
    if ended != last_ended:
        last_ended, last_change = ended, now
    if a.stall and held_at is not None and now - last_change >= a.stall * 1000:
        print(json.dumps({"held_at_ms": held_at, "ended_at_ms": last_change, "total": total, "ended": ended,
                          "succeeded": counts.get("succeeded", 0), "stalled": True,
                          "running": counts.get("running", 0), "queued": counts.get("queued", 0)}))
        sys.exit(0)
    time.sleep(0.02)
print(f"drain_wait: queue {a.queue} not drained within {a.timeout} s", file=sys.stderr)
sys.exit(1)

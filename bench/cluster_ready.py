"""Waits until the cluster, as the node on PORT lists it (GET /v1/cluster),
has K nodes alive and every one of them has beaten its heartbeat since the
youngest started. A node looks for the others alive right after it beats,
so from then on each knows every other (a node sends its wake-up notices
only while it knows of another node alive). Polls every 50 ms; exits 1
after --timeout seconds (default 30). Prints the node list as JSON: each
node's id, port-independent fields and running count.

usage: cluster_ready.py PORT K [--timeout S]"""
import argparse
import http.client
import json
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("k", type=int)
ap.add_argument("--timeout", type=float, default=30)
a = ap.parse_args()

conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
deadline = time.monotonic() + a.timeout
alive = []
while time.monotonic() < deadline:
    conn.request("GET", "/v1/cluster")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"cluster_ready: GET /v1/cluster answered {resp.status}: {body[:200]!r}")
    alive = [n for n in json.loads(body)["nodes"] if n["alive"]]
    # RFC 3339 UTC with milliseconds: the strings order as the instants do.
    youngest = max((n["started_at"] for n in alive), default="")
    if len(alive) == a.k and all(n["heartbeat_at"] > youngest for n in alive):
        print(json.dumps([{"id": n["id"], "leader": n["leader"], "running": n["running"]} for n in alive]))
        sys.exit(0)
    time.sleep(0.05)
sys.exit(f"cluster_ready: not {a.k} nodes alive and beating within {a.timeout} s (alive now: {len(alive)})")

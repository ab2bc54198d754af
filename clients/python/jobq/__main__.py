"""python -m jobq worker --url URL --queue NAME [--concurrency N] [--processes] module:worker"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .worker import load_worker


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobq")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="serve external queues with a jobq.Worker")
    w.add_argument("spec", help="module:attribute naming a jobq.Worker")
    w.add_argument("--url", default=os.environ.get("JOBQ_URL", "http://127.0.0.1:8080"))
    w.add_argument("--api-key", default=os.environ.get("JOBQ_API_KEY"))
    w.add_argument("--queue", action="append", dest="queues",
                   help="queue to lease from (repeatable; default: the Worker's)")
    w.add_argument("--concurrency", type=int, help="concurrent slots (default: the Worker's)")
    w.add_argument("--processes", action="store_true", help="run tasks in processes, not threads")
    w.add_argument("--lease", type=float, help="lease length in seconds (default 60)")
    w.add_argument("--grace", type=float, help="seconds running jobs get after SIGTERM (default 30)")
    a = p.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    worker = load_worker(a.spec)
    from .client import Client
    worker.client = Client(a.url, api_key=a.api_key or worker.client.api_key)
    if a.queues:
        worker.queues = a.queues
    if a.concurrency:
        worker.concurrency = a.concurrency
    if a.processes:
        worker.processes = True
    if a.lease:
        worker.lease_s = a.lease
    if a.grace is not None:
        worker.grace_s = a.grace
    sys.stderr.write("jobq worker: %s serving %s on %s with %d %s\n" % (
        a.spec, ",".join(worker.queues), a.url, worker.concurrency,
        "processes" if worker.processes else "threads"))
    sys.stderr.flush()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real worker processes (`python -m jobq worker`) against a real jobqd:
a worker killed with SIGKILL mid-job is rescued by its lease's expiry, and
1,000 jobs over 4 processes are each run exactly once."""
from __future__ import annotations

import collections
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from typing import List

import jobq

from .server import Jobqd, bounded

PKG_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LEASE_S = 2


def _lines(path: str) -> List[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _ts(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class RescueTest(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Jobqd(["--external-queue", "py.*"]).start()
        self.c = jobq.Client(self.d.url, timeout=30)
        self.tmp = tempfile.mkdtemp(prefix="jobq-rescue-")
        self.procs: List[subprocess.Popen] = []  # type: ignore[type-arg]

    def tearDown(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr is not None:
                p.stderr.close()
        self.c.close()
        self.d.stop()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)

    def _workers(self, n: int, *args: str) -> List[subprocess.Popen]:  # type: ignore[type-arg]
        env = dict(os.environ, PYTHONPATH=PKG_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for _ in range(n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "jobq", "worker", "--url", self.d.url,
                 "--queue", "py.rescue", *args, "tests.rescue_tasks:worker"],
                cwd=PKG_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        return self.procs

    def test_kill_9_mid_job_reruns_on_another_worker_once(self) -> None:
        a, b = self._workers(2, "--lease", str(LEASE_S), "--concurrency", "1")
        path = os.path.join(self.tmp, "runs")
        job = self.c.submit("stall_first", {"args": [path, 60], "kwargs": {}},
                            queue="py.rescue", max_attempts=3, backoff_s=0.1)
        first = bounded(lambda: _lines(path), 20, "the first attempt's start")
        self.assertEqual(len(first), 1)
        word, attempt, pid, _ = first[0].split()
        self.assertEqual((word, attempt), ("start", "1"))
        victim = {a.pid: a, b.pid: b}[int(pid)]
        other = b if victim is a else a
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        self.assertEqual(victim.wait(timeout=10), -signal.SIGKILL)

        done = self.c.wait(job, timeout=LEASE_S + 20)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["result"], {"attempt": 2, "pid": other.pid})
        self.assertEqual(done["attempts"], 2)
        self.assertEqual([(h["attempt"], h["outcome"]) for h in done["attempt_history"]],
                         [(1, "interrupted"), (2, "succeeded")])
        runs = [line.split()[:3] for line in _lines(path)]
        self.assertEqual(runs, [["start", "1", str(victim.pid)],
                                ["start", "2", str(other.pid)],
                                ["end", "2", str(other.pid)]])
        # The dead worker's last heartbeat extended its lease to at most
        # killed_at + LEASE_S; the server ends it within a second of that
        # and the other worker's waiting lease takes the job at once.
        rerun_started = float(_lines(path)[1].split()[3])
        self.assertLessEqual(rerun_started - killed_at, LEASE_S + 1.0)
        self.assertLessEqual(_ts(done["attempt_history"][1]["started_at"]) - killed_at, LEASE_S + 1.0)

    def test_a_stopped_worker_comes_back_and_its_stale_answer_changes_nothing(self) -> None:
        a, b = self._workers(2, "--lease", str(LEASE_S), "--concurrency", "1")
        path = os.path.join(self.tmp, "runs")
        go = os.path.join(self.tmp, "go")
        job = self.c.submit("stall_first", {"args": [path, 60, go], "kwargs": {}},
                            queue="py.rescue", max_attempts=3, backoff_s=0.1)
        first = bounded(lambda: _lines(path), 20, "the first attempt's start")
        stopped = {a.pid: a, b.pid: b}[int(first[0].split()[2])]
        other = b if stopped is a else a
        stopped.send_signal(signal.SIGSTOP)  # hung or partitioned: no heartbeats
        try:
            done = self.c.wait(job, timeout=LEASE_S + 20)
        finally:
            open(go, "w").close()
            stopped.send_signal(signal.SIGCONT)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["result"], {"attempt": 2, "pid": other.pid})
        # The stopped worker wakes with attempt 1's lease: its next
        # heartbeat (or its complete) is refused with 409 ...
        stale = re.compile(r"route=/v1/jobs/\{id\}/(heartbeat|complete) path=/v1/jobs/%s/\w+ "
                           r"status=409 " % re.escape(job["id"]))
        bounded(lambda: stale.search(self.d.log()), 20, "a 409 for the stale lease")
        # ... and changed nothing: the record is the rescuer's, the stale
        # worker is alive, and its run did not answer for the job.
        self.assertEqual(self.c.get(job), done)
        self.assertIsNone(stopped.poll())
        self.assertEqual(len(re.findall(r"path=/v1/jobs/%s/complete status=204 " % re.escape(job["id"]),
                                        self.d.log())), 1)

    def test_1000_jobs_over_4_processes_each_run_once(self) -> None:
        self._workers(4, "--lease", "30", "--concurrency", "4")
        path = os.path.join(self.tmp, "runs")
        n = 1000
        batch = self.c.submit_batch([{"type": "noop", "payload": {"args": [path], "kwargs": {}},
                                      "queue": "py.rescue", "max_attempts": 1}
                                     for _ in range(n)])
        self.assertEqual(batch["total"], n)
        end = time.monotonic() + 60
        while not self.c.get_batch(batch, wait=10)["done"]:
            self.assertLess(time.monotonic(), end, "the batch did not end within 60 s")
        jobs = list(self.c.list(batch_id=batch["id"], page_size=1000))
        self.assertEqual(sorted(j["id"] for j in jobs), sorted(batch["job_ids"]))
        self.assertEqual(collections.Counter(j["state"] for j in jobs), {"succeeded": n})
        self.assertEqual(collections.Counter(j["attempts"] for j in jobs), {1: n})

        # Every run wrote start then end (one write() each, O_APPEND): no
        # job started while a run of it was open, each ran exactly once.
        open_runs = {}
        runs = collections.Counter()
        pids = set()
        for line in _lines(path):
            word, jid, attempt, pid = line.split()
            if word == "start":
                self.assertNotIn(jid, open_runs, "job %s ran twice at once" % jid)
                open_runs[jid] = pid
            else:
                self.assertEqual(open_runs.pop(jid, None), pid, "end without its start: " + line)
                runs[jid] += 1
            pids.add(int(pid))
        self.assertEqual(open_runs, {})
        self.assertEqual(runs, collections.Counter({j: 1 for j in batch["job_ids"]}))
        self.assertLessEqual(pids, {p.pid for p in self.procs})
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            self.assertEqual(p.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()

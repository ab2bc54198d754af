"""jobq.Worker against a real jobqd with the lease API."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import unittest

import jobq

from . import worker_tasks
from .server import Jobqd, bounded

PKG_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


class WorkerTest(unittest.TestCase):
    d = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.d = Jobqd(["--external-queue", "py.*"]).start()
        cls.c = jobq.Client(cls.d.url, timeout=10)
        w = worker_tasks.worker
        w.client = jobq.Client(cls.d.url)
        cls.thread = threading.Thread(target=w.run, kwargs={"install_signals": False})
        cls.thread.start()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.d is None:
            return
        worker_tasks.worker.stop()
        cls.thread.join(30)
        cls.c.close()
        cls.d.stop()

    def test_function_result_and_failure(self) -> None:
        with jobq.Executor(self.c, queue="py.t", max_attempts=1) as ex:
            self.assertEqual(ex.submit(worker_tasks.add, 2, b=3).result(timeout=20), 5)
            f = ex.submit("boom", "bad input")
            with self.assertRaises(jobq.JobFailed) as cm:
                f.result(timeout=20)
            self.assertIn("Traceback (most recent call last)", cm.exception.error)
            self.assertIn("ValueError: bad input", cm.exception.error)

    def test_progress_and_current_job(self) -> None:
        j = self.c.submit("steps", {"args": [4], "kwargs": {}}, queue="py.t")
        done = self.c.wait(j, timeout=20)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["result"], {"attempt": 1, "id": j["id"]})

    def test_cancel_reaches_the_function(self) -> None:
        worker_tasks.saw_cancel.clear()
        j = self.c.submit("until_canceled", {"args": [], "kwargs": {}}, queue="py.t")
        bounded(lambda: self.c.get(j)["state"] == "running", what="running")
        bounded(lambda: (self.c.get(j).get("progress") or {}).get("percent") == 50,
                 what="progress 50 from the heartbeat")
        self.assertEqual(self.c.cancel(j)["state"], "canceled")
        # the next heartbeat (every lease_s/3 = 1 s) answers cancel: true
        self.assertTrue(worker_tasks.saw_cancel.wait(10))
        self.assertEqual(self.c.get(j)["state"], "canceled")

    def test_cli_worker_processes_and_sigterm(self) -> None:
        env = dict(os.environ, PYTHONPATH=PKG_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.Popen([sys.executable, "-m", "jobq", "worker", "--url", self.d.url,
                              "--queue", "py.p", "--concurrency", "2", "--processes",
                              "--grace", "5", "tests.worker_tasks:worker"],
                             cwd=PKG_DIR, env=env, stderr=subprocess.PIPE, text=True)
        try:
            with jobq.Executor(self.c, queue="py.p") as ex:
                fs = [ex.submit("add", i, i) for i in range(20)]
                self.assertEqual([f.result(timeout=30) for f in fs], [2 * i for i in range(20)])
                child = ex.submit("pid").result(timeout=30)
                self.assertNotEqual(child, p.pid)  # ran in a process of the pool
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=20), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            err = p.stderr.read()
            p.stderr.close()
        self.assertIn("jobq worker: tests.worker_tasks:worker serving py.p", err)


if __name__ == "__main__":
    unittest.main()

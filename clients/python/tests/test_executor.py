"""jobq.Executor and progress bars against a real jobqd (builtin types)."""
from __future__ import annotations

import concurrent.futures
import io
import threading
import unittest

import jobq

from .server import Jobqd


class ExecutorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.d = Jobqd(["--workers", "8"]).start()
        cls.c = jobq.Client(cls.d.url, timeout=10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.c.close()
        cls.d.stop()

    def test_submit_resolves_with_the_result(self) -> None:
        with jobq.Executor(self.c) as ex:
            f = ex.submit("echo", 1, "two", three=3)
            self.assertIsInstance(f, concurrent.futures.Future)
            self.assertEqual(f.result(timeout=20), {"args": [1, "two"], "kwargs": {"three": 3}})

    def test_function_names_its_type(self) -> None:
        def echo(x: int) -> int:
            return x
        with jobq.Executor(self.c, type="echo") as ex:
            self.assertEqual(ex.submit(echo, 5).result(timeout=20), {"args": [5], "kwargs": {}})
            self.assertEqual(ex.submit(None, 6).result(timeout=20), {"args": [6], "kwargs": {}})
        with jobq.Executor(self.c) as ex, self.assertRaises(TypeError):
            ex.submit(lambda: 1)

    def test_map(self) -> None:
        with jobq.Executor(self.c, queue="mapq") as ex:
            got = list(ex.map("echo", range(10), timeout=30))
        self.assertEqual([g["args"][0] for g in got], list(range(10)))

    def test_as_completed_and_wait(self) -> None:
        with jobq.Executor(self.c) as ex:
            fs = [ex.submit("echo", i) for i in range(10)]
            seen = {f.result()["args"][0] for f in concurrent.futures.as_completed(fs, timeout=30)}
            self.assertEqual(seen, set(range(10)))
            done, not_done = concurrent.futures.wait(fs, timeout=30)
            self.assertEqual((len(done), len(not_done)), (10, 0))

    def test_failure_propagates(self) -> None:
        with jobq.Executor(self.c, max_attempts=1) as ex:
            f = ex.submit_job("fail", {"message": "boom"})
            with self.assertRaises(jobq.JobFailed) as cm:
                f.result(timeout=20)
            self.assertEqual(cm.exception.error, "boom")
            self.assertEqual(cm.exception.job_id, f.job_id)
            self.assertEqual(cm.exception.job["state"], "failed")

    def test_cancel_from_the_future_and_from_the_server(self) -> None:
        with jobq.Executor(self.c) as ex:
            f = ex.submit_job("sleep", {"seconds": 60})
            self.assertTrue(f.cancel())
            self.assertTrue(f.cancelled())
            self.assertEqual(self.c.get(f.job_id)["state"], "canceled")
            with self.assertRaises(concurrent.futures.CancelledError):
                f.result(timeout=1)
            g = ex.submit_job("sleep", {"seconds": 60})
            self.c.cancel(g.job_id)  # another client cancels: the event resolves the future
            with self.assertRaises(concurrent.futures.CancelledError):
                g.result(timeout=20)
            h = ex.submit("echo", 1)
            h.result(timeout=20)
            self.assertFalse(h.cancel())  # already succeeded

    def test_200_futures_resolved_by_one_thread(self) -> None:
        before = set(threading.enumerate())
        ex = jobq.Executor(self.c, queue="many")
        fs = [ex.submit("echo", i) for i in range(200)]
        # Submitting 200 jobs started one thread: the resolver.
        self.assertEqual(set(threading.enumerate()) - before, {ex.resolver_thread})
        done, not_done = concurrent.futures.wait(fs, timeout=60)
        self.assertEqual(len(not_done), 0)
        self.assertEqual(sorted(f.result()["args"][0] for f in fs), list(range(200)))
        self.assertEqual(set(threading.enumerate()) - before, {ex.resolver_thread})
        ex.shutdown(wait=True)
        self.assertFalse(ex.resolver_thread.is_alive())

    def test_future_of_a_job_that_ended_before_the_stream(self) -> None:
        # The job ends before the Executor's stream exists: the re-check
        # after subscribing resolves it.
        j = self.c.submit("echo", {"args": [], "kwargs": {}})
        self.c.wait(j, timeout=10)
        ex = jobq.Executor(self.c)
        fut = jobq.JobFuture(j["id"], self.c)
        ex._resolver.register(fut, 0.0)
        self.assertEqual(fut.result(timeout=20), {"args": [], "kwargs": {}})
        ex.shutdown()

    def test_shutdown_waits_like_join(self) -> None:
        ex = jobq.Executor(self.c)
        fs = [ex.submit_job("sleep", {"seconds": 0.2}) for _ in range(3)]
        ex.shutdown(wait=True)
        self.assertTrue(all(f.done() for f in fs))
        with self.assertRaises(RuntimeError):
            ex.submit("echo", 1)

    def test_shutdown_cancel_futures(self) -> None:
        ex = jobq.Executor(self.c)
        fs = [ex.submit_job("sleep", {"seconds": 60}) for _ in range(3)]
        ex.shutdown(wait=True, cancel_futures=True)
        self.assertTrue(all(f.cancelled() for f in fs))

    def test_plain_progress_bar(self) -> None:
        out = io.StringIO()
        with jobq.Executor(self.c) as ex:
            fs = [ex.submit("echo", i) for i in range(5)]
            done = jobq.wait_all(fs, progress=True, file=out, plain=True, desc="echo")
        self.assertEqual(len(done), 5)
        text = out.getvalue()
        self.assertIn("\recho [..............................] 0/5   0%", text)
        self.assertTrue(text.endswith("echo [##############################] 5/5 100%\n"), repr(text))

    def test_tqdm_progress_bar(self) -> None:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            self.skipTest("tqdm is not installed (Debian: python3-tqdm)")
        out = io.StringIO()
        ex = jobq.Executor(self.c)
        for i in range(4):
            ex.submit("echo", i)
        ex.shutdown(wait=True)
        jobq.wait_all(ex._futures, progress=True, file=out, desc="tq")
        self.assertIn("tq: 100%", out.getvalue())
        self.assertIn("4/4", out.getvalue())


if __name__ == "__main__":
    unittest.main()

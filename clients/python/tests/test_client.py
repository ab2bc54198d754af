"""jobq.Client against a real jobqd."""
from __future__ import annotations

import threading
import unittest
import uuid

import jobq

from .server import Jobqd


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.d = Jobqd(["--queue", "lim=1"]).start()
        cls.c = jobq.Client(cls.d.url, timeout=10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.c.close()
        cls.d.stop()

    def test_submit_every_field_and_get(self) -> None:
        j = self.c.submit("echo", {"hello": "world"}, queue="q1", priority=5, max_attempts=2,
                          backoff=0.5, max_backoff_s=10, timeout_s=30, delay_s=0, retention=3600,
                          callback_url="http://127.0.0.1:9/cb")
        self.assertIn(j["state"], ("queued", "running", "succeeded"))
        self.assertEqual(j["queue"], "q1")
        self.assertEqual(j["priority"], 5)
        self.assertEqual(j["max_attempts"], 2)
        self.assertEqual(j["backoff_s"], 0.5)
        self.assertEqual(j["max_backoff_s"], 10)
        self.assertEqual(j["timeout_s"], 30)
        self.assertEqual(j["retention_s"], 3600)
        done = self.c.wait(j["id"], timeout=10)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["result"], {"hello": "world"})
        self.assertIn("attempt_history", self.c.get(j))

    def test_depends_on_a_job_and_a_batch_index(self) -> None:
        a = self.c.submit("sleep", {"seconds": 0.2})
        b = self.c.submit("echo", "after", depends_on=[a], on_dependency_failure="run")
        self.assertEqual(b["state"], "blocked")
        self.assertEqual(b["depends_on"], [a["id"]])
        self.assertEqual(b["on_dependency_failure"], "run")
        self.assertEqual(self.c.wait(b, timeout=10)["state"], "succeeded")
        batch = self.c.submit_batch([{"type": "echo"}, {"type": "echo", "depends_on": [0]}])
        done = self.c.wait(batch["job_ids"][1], timeout=10)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["depends_on"], [batch["job_ids"][0]])

    def test_run_at_datetime(self) -> None:
        import datetime
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        j = self.c.submit("echo", 1, run_at=at)
        self.assertEqual(j["state"], "scheduled")
        self.assertEqual(self.c.cancel(j)["state"], "canceled")

    def test_idempotency_key(self) -> None:
        key = str(uuid.uuid4())
        a = self.c.submit("echo", {"n": 1}, idempotency_key=key)
        b = self.c.submit("echo", {"n": 1}, idempotency_key=key)
        self.assertEqual(a["id"], b["id"])
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.submit("echo", {"n": 2}, idempotency_key=key)
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(cm.exception.code, "idempotency_conflict")
        self.assertEqual(cm.exception.field, "Idempotency-Key")

    def test_bad_submit_raises_problem(self) -> None:
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.submit("sleep", {"seconds": -1})
        e = cm.exception
        self.assertEqual(e.status, 422)
        self.assertEqual(e.code, "invalid_payload")
        self.assertEqual(e.field, "payload.seconds")
        self.assertEqual(e.type, "urn:jobq:problem:invalid_payload")
        self.assertTrue(e.detail)
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.submit("echo", None, priority="high")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field),
                         (400, "invalid_field", "priority"))
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.submit("nope")
        self.assertEqual((cm.exception.status, cm.exception.code), (422, "unknown_job_type"))
        with self.assertRaises(TypeError):
            self.c.submit("echo", None, colour="red")

    def test_wait_times_out_with_the_job_as_it_is(self) -> None:
        j = self.c.submit("sleep", {"seconds": 30})
        got = self.c.wait(j, timeout=0.3)
        self.assertIn(got["state"], ("queued", "running"))
        self.assertEqual(self.c.cancel(j)["state"], "canceled")

    def test_cancel_retry_delete(self) -> None:
        j = self.c.submit("fail", {"message": "boom", "retryable": False})
        done = self.c.wait(j, timeout=10)
        self.assertEqual((done["state"], done["error"]), ("failed", "boom"))
        self.assertEqual(self.c.retry(j)["state"], "queued")
        self.assertEqual(self.c.wait(j, timeout=10)["state"], "failed")
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.cancel(j)
        self.assertEqual((cm.exception.status, cm.exception.code), (409, "job_finished"))
        self.c.delete(j)
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.get(j)
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "job_not_found"))

    def test_list_iterates_pages(self) -> None:
        ids = {self.c.submit("echo", i, queue="listq")["id"] for i in range(7)}
        got = [j["id"] for j in self.c.list(queue="listq", page_size=2)]
        self.assertEqual(len(got), 7)
        self.assertEqual(set(got), ids)
        self.assertEqual(len(list(self.c.list(queue="listq", limit=3, page_size=2))), 3)

    def test_batches(self) -> None:
        b = self.c.submit_batch([{"type": "echo", "payload": i, "queue": "bq"} for i in range(5)])
        self.assertEqual(b["total"], 5)
        self.assertEqual(len(b["job_ids"]), 5)
        done = self.c.get_batch(b["id"], wait=20)
        self.assertTrue(done["done"])
        self.assertEqual(done["counts"]["succeeded"], 5)
        with self.assertRaises(jobq.JobqError) as cm:
            self.c.submit_batch([{"type": "echo"}, {"type": "sleep", "payload": {}}])
        self.assertEqual(cm.exception.field, "jobs[1].payload.seconds")

    def test_queues_pause_resume_info(self) -> None:
        self.c.submit("echo", 1, queue="pq")
        self.assertTrue(self.c.pause("pq")["paused"])
        self.assertTrue(self.c.queue("pq")["paused"])
        names = {q["name"] for q in self.c.queues(page_size=1)}
        self.assertIn("pq", names)
        self.assertIn("lim", names)
        self.assertFalse(self.c.resume("pq")["paused"])
        info = self.c.info()
        self.assertEqual(info["backend"], "sqlite")
        self.assertIn("sync", info["durability"])

    def test_connection_is_reused_per_thread(self) -> None:
        c = jobq.Client(self.d.url)
        c.info()
        conn = c._local.conn
        c.info()
        c.get(c.submit("echo", 1))
        self.assertIs(c._local.conn, conn)
        other = []
        t = threading.Thread(target=lambda: (c.info(), other.append(c._local.conn)))
        t.start()
        t.join()
        self.assertIsNot(other[0], conn)
        other[0].close()
        c.close()

    def test_connection_error(self) -> None:
        c = jobq.Client("http://127.0.0.1:1", timeout=2)
        with self.assertRaises(jobq.JobqError) as cm:
            c.info()
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "connection_error"))


if __name__ == "__main__":
    unittest.main()

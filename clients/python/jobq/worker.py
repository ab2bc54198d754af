"""Workers: run your own Python functions as jobs of external queues.

The lease API (POST /v1/leases, then heartbeat / complete / fail / release
on /v1/jobs/{id}/...). One thread leases, one thread heartbeats every
running job, and `concurrency` slots (threads, or processes with
processes=True) run the functions. A slot is free again as soon as its
function returns, so the next lease is in flight while the answer is: the
two share one commit on the server instead of waiting for one each.
Thread slots are long-lived threads, each keeping its connection.
"""
from __future__ import annotations

import concurrent.futures
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional, Sequence, Union

from .client import Client, JobqError

__all__ = ["Worker", "Job", "JobCanceled", "current_job"]

_local = threading.local()


class JobCanceled(Exception):
    """Raised by Job.progress() once the job was canceled: let it propagate
    (or return) so the slot is freed; nothing more is reported."""


def current_job() -> "Job":
    """The job the calling thread runs (inside a task function)."""
    job = getattr(_local, "job", None)
    if job is None:
        raise RuntimeError("jobq.current_job() called outside a running job")
    return job


class Job:
    """A leased job as a task function sees it: id, type, queue, attempt,
    payload; progress(percent, message) to report (sent with the next
    heartbeat), cancelled() to ask whether it was canceled."""

    def __init__(self, leased: Dict[str, Any]) -> None:
        self.data = leased
        self.id: str = leased["id"]
        self.type: str = leased.get("type", "")
        self.queue: str = leased.get("queue", "")
        self.attempt: int = leased.get("attempt", leased.get("attempts", 1))
        self.payload: Any = leased.get("payload")
        self.lease_id: str = leased["lease_id"]
        self._progress: Optional[Dict[str, Any]] = None
        self._progress_sent = True
        self._cancel = threading.Event()
        self.lost = False  # the lease ended (409, cancel): answers are dropped
        self.next_beat = 0.0

    def progress(self, percent: float, message: str = "") -> None:
        """Reports progress; raises JobCanceled once the job was canceled."""
        if self._cancel.is_set():
            raise JobCanceled(self.id)
        self._progress = {"percent": max(0.0, min(100.0, float(percent))), "message": str(message)}
        self._progress_sent = False

    def cancelled(self) -> bool:
        return self._cancel.is_set()


def _call(fn: Callable[..., Any], payload: Any) -> Any:
    if isinstance(payload, dict) and set(payload) <= {"args", "kwargs"} and payload:
        return fn(*payload.get("args", []), **payload.get("kwargs", {}))
    return fn(payload)


def _call_in_process(spec: str, type: str, payload: Any) -> Any:
    """Runs a task in a worker process: the Worker is imported there by spec."""
    w = load_worker(spec)
    return _call(w.tasks[type], payload)


def load_worker(spec: str) -> "Worker":
    """'module:attr' -> the Worker object it names."""
    import importlib
    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise ValueError("worker spec must be module:attribute, not %r" % spec)
    obj = getattr(importlib.import_module(mod), attr)
    if not isinstance(obj, Worker):
        raise TypeError("%s is not a jobq.Worker" % spec)
    obj.spec = spec
    return obj


class Worker:
    """worker = Worker(url, queues=["py"], concurrency=4); @worker.task("resize")
    registers a function, called as fn(*args, **kwargs) from the payload
    {"args": [...], "kwargs": {...}} (any other payload is passed as the
    one argument). worker.run() serves until SIGTERM/SIGINT or stop()."""

    def __init__(self, url: Union[str, Client], queues: Sequence[str] = ("default",),
                 api_key: Optional[str] = None, concurrency: int = 1, processes: bool = False,
                 lease_s: float = 60.0, wait_s: float = 5.0, grace_s: float = 30.0,
                 name: Optional[str] = None) -> None:
        self.client = url if isinstance(url, Client) else Client(url, api_key=api_key)
        self.queues = list(queues)
        self.concurrency = max(1, int(concurrency))
        self.processes = processes
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.grace_s = grace_s
        self.name = name or "%s:%d" % (socket.gethostname(), os.getpid())
        self.tasks: Dict[str, Callable[..., Any]] = {}
        self.spec: Optional[str] = None
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._running: Dict[str, Job] = {}  # leased and not yet answered
        self._busy = 0  # slots whose function is running
        self.completed = 0
        self.failed = 0

    def task(self, name: Optional[str] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            t = name or fn.__name__
            self.tasks[t] = fn
            fn.jobq_type = t  # type: ignore[attr-defined]
            return fn
        return register

    def stop(self) -> None:
        """Stops leasing; run() then finishes running jobs within grace_s."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

    # ---- answering ----

    def _answer(self, job: Job, action: str, body: Dict[str, Any]) -> None:
        if job.lost:
            return
        body = dict(body, lease_id=job.lease_id)
        try:
            self.client.request("POST", "/v1/jobs/%s/%s" % (job.id, action), body,
                                headers={"Prefer": "return=minimal"})  # 204: no job to read back
        except JobqError as e:
            if e.status in (404, 409):
                job.lost = True
                return
            sys.stderr.write("jobq worker: %s %s: %s\n" % (action, job.id, e))

    def _finish(self, job: Job, result: Any = None, error: Optional[str] = None,
                retryable: bool = True) -> None:
        with self._lock:
            self._busy -= 1  # the slot may lease again while this answers
            self._lock.notify_all()
        try:
            if job.cancelled():
                return  # the cancel ended the lease: nothing to answer
            if error is None:
                self._answer(job, "complete", {"result": result})
                self.completed += 1
            else:
                self._answer(job, "fail", {"error": error, "retryable": retryable})
                self.failed += 1
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                self._lock.notify_all()

    def _slot_thread(self, jobs: "queue.SimpleQueue[Optional[Job]]") -> None:
        try:
            while True:
                job = jobs.get()
                if job is None:
                    break
                self._run_job(job)
        finally:
            self.client.close()  # this thread's connection

    def _run_job(self, job: Job) -> None:
        fn = self.tasks.get(job.type)
        if fn is None:
            self._finish(job, error="no task %r registered in this worker" % job.type, retryable=False)
            return
        _local.job = job
        try:
            result = _call(fn, job.payload)
        except JobCanceled:
            self._finish(job)
            return
        except BaseException:
            self._finish(job, error=traceback.format_exc())
            return
        finally:
            _local.job = None
        self._finish(job, result=result)

    def _done_in_process(self, job: Job, f: "concurrent.futures.Future[Any]") -> None:
        e = f.exception()
        if e is None:
            self._finish(job, result=f.result())
        else:
            self._finish(job, error="".join(traceback.format_exception(type(e), e, e.__traceback__)))

    # ---- heartbeats ----

    def _heartbeats(self) -> None:
        every = max(self.lease_s / 3.0, 0.2)
        while True:
            with self._lock:
                if self._stop.is_set() and not self._running and self._lease_done:
                    break
                jobs = list(self._running.values())
                now = time.monotonic()
                due = [j for j in jobs if j.next_beat <= now or not j._progress_sent]
                if not due:
                    nxt = min([j.next_beat for j in jobs], default=now + every)
                    self._lock.wait(min(max(nxt - now, 0.05), every, 0.5))
                    continue
            for j in due:
                self._beat(j, every)
        self.client.close()

    def _beat(self, job: Job, every: float) -> None:
        if job.lost:
            return
        body: Dict[str, Any] = {"lease_id": job.lease_id, "lease_s": self.lease_s}
        if job._progress is not None and not job._progress_sent:
            body["progress"] = job._progress
        job._progress_sent = True
        job.next_beat = time.monotonic() + every
        try:
            _, r = self.client.request("POST", "/v1/jobs/%s/heartbeat" % job.id, body)
        except JobqError as e:
            if e.status in (404, 409):
                job.lost = True
                job._cancel.set()
            return
        if r and r.get("cancel"):
            job.lost = True
            job._cancel.set()

    # ---- the loop ----

    def run(self, install_signals: bool = True) -> None:
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        pool: Optional[concurrent.futures.Executor] = None
        if self.processes:
            if not self.spec:
                raise RuntimeError("processes=True needs the worker loaded by spec (python -m jobq worker)")
            import multiprocessing
            pool = concurrent.futures.ProcessPoolExecutor(
                self.concurrency, mp_context=multiprocessing.get_context("fork"))
        # Thread slots: twice the concurrency, so a job leased while a
        # thread still answers for its last one starts at once. Daemon
        # threads: a function still running after the grace period (its job
        # released) does not hold up the process's exit.
        jobs: "queue.SimpleQueue[Optional[Job]]" = queue.SimpleQueue()
        slots = [] if pool is not None else [
            threading.Thread(target=self._slot_thread, args=(jobs,), name="jobq-slot-%d" % i, daemon=True)
            for i in range(2 * self.concurrency)]
        for t in slots:
            t.start()
        self._lease_done = False
        beat = threading.Thread(target=self._heartbeats, name="jobq-heartbeat", daemon=True)
        beat.start()
        try:
            while not self._stop.is_set():
                with self._lock:
                    while self._busy >= self.concurrency and not self._stop.is_set():
                        self._lock.wait()
                    free = self.concurrency - self._busy
                if self._stop.is_set():
                    break
                try:
                    _, r = self.client.request("POST", "/v1/leases", {
                        "queues": self.queues, "max": min(free, 100), "wait_s": self.wait_s,
                        "lease_s": self.lease_s, "worker": self.name[:200]},
                        wait=self.wait_s, retry_safe=False)
                except JobqError as e:
                    if e.status in (400, 401, 403, 404, 422):
                        raise
                    sys.stderr.write("jobq worker: lease: %s\n" % e)
                    self._stop.wait(1.0)
                    continue
                for leased in r.get("jobs", []):
                    job = Job(leased)
                    job.next_beat = time.monotonic() + self.lease_s / 3.0
                    with self._lock:
                        self._running[job.id] = job
                        self._busy += 1
                        self._lock.notify_all()
                    if pool is not None:
                        f = pool.submit(_call_in_process, self.spec, job.type, job.payload)
                        f.add_done_callback(lambda f, job=job: self._done_in_process(job, f))
                    else:
                        jobs.put(job)
        finally:
            self._drain(pool)
            for _ in slots:
                jobs.put(None)
            self._lease_done = True
            with self._lock:
                self._lock.notify_all()
            beat.join(timeout=5)
            self.client.close()

    def _drain(self, pool: Optional[concurrent.futures.Executor]) -> None:
        """Lets running jobs finish within grace_s, then releases the rest."""
        deadline = time.monotonic() + self.grace_s
        with self._lock:
            while self._running and time.monotonic() < deadline:
                self._lock.wait(min(deadline - time.monotonic(), 0.5))
            left = list(self._running.values())
        for job in left:
            self._answer(job, "release", {"delay_s": 0})
            job.lost = True
            job._cancel.set()
            with self._lock:
                self._running.pop(job.id, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

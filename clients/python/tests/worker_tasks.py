"""Tasks for the Worker tests; also run as `python -m jobq worker tests.worker_tasks:worker`."""
import os
import threading
import time

import jobq

worker = jobq.Worker("http://127.0.0.1:1", queues=["py.t"], concurrency=4, lease_s=3, wait_s=1)
saw_cancel = threading.Event()


@worker.task("add")
def add(a, b):
    return a + b


@worker.task()
def boom(message):
    raise ValueError(message)


@worker.task()
def pid():
    return os.getpid()


@worker.task()
def steps(n):
    job = jobq.current_job()
    for i in range(n):
        job.progress(100 * (i + 1) / n, "step %d of %d" % (i + 1, n))
    return {"attempt": job.attempt, "id": job.id}


@worker.task()
def until_canceled():
    job = jobq.current_job()
    end = time.monotonic() + 30
    try:
        while time.monotonic() < end:
            job.progress(50, "waiting to be canceled")
            time.sleep(0.05)
    except jobq.JobCanceled:
        saw_cancel.set()
        raise
    return "not canceled"

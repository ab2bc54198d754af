"""Tasks for the rescue tests, run in real worker processes by
`python -m jobq worker ... tests.rescue_tasks:worker`. Each run appends
lines to a file named in its arguments; the file is opened O_APPEND and
each line is written with one write(), so lines of concurrent runs never
mix."""
import os
import time

import jobq

worker = jobq.Worker("http://127.0.0.1:1", queues=["py.rescue"], concurrency=1,
                     lease_s=2, wait_s=1)


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@worker.task()
def stall_first(path, stall_s, go=None):
    """Attempt 1 records its start and then stalls for stall_s, or until
    the file `go` exists (its worker is killed or stopped meanwhile); a
    later attempt records start and end at once."""
    job = jobq.current_job()
    _append(path, "start %d %d %.6f" % (job.attempt, os.getpid(), time.time()))
    end = time.monotonic() + stall_s
    while job.attempt == 1 and time.monotonic() < end and not (go and os.path.exists(go)):
        time.sleep(0.02)  # the run the test kills or stops, bounded by stall_s
    _append(path, "end %d %d %.6f" % (job.attempt, os.getpid(), time.time()))
    return {"attempt": job.attempt, "pid": os.getpid()}


@worker.task()
def noop(path):
    job = jobq.current_job()
    _append(path, "start %s %d %d" % (job.id, job.attempt, os.getpid()))
    _append(path, "end %s %d %d" % (job.id, job.attempt, os.getpid()))
    return job.attempt

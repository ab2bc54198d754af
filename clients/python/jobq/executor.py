"""concurrent.futures over jobq: an Executor whose futures are jobs.

Every future of an Executor is resolved by one background thread reading
the event stream GET /v1/events: filtered by ?ids= when the server has that
filter (detected once per Executor), else the whole stream filtered here.
A job that may have ended before the stream covered it is checked once
with a GET after the subscription that covers it.
"""
from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Union

from .client import TERMINAL_STATES, Client, JobqError, job_body
from .progress import wait_all

__all__ = ["Executor", "JobFuture", "JobFailed", "payload_for", "type_name"]

_IDS_MAX = 150       # ids in one ?ids= (a request line stays under 8 KiB)
_EVENT_WAIT_S = 5.0  # long poll after a terminal event
_RECENT_MAX = 100000  # terminal events remembered for jobs not registered yet


class JobFailed(Exception):
    """The job ended `failed`: `error` is its last error, `job` the job."""

    def __init__(self, job: Dict[str, Any]) -> None:
        self.job = job
        self.job_id = job.get("id")
        self.error = job.get("error")
        super().__init__("job %s failed: %s" % (self.job_id, self.error))


def type_name(fn: Any) -> str:
    """The job type a submit names: a string as is, a function registered
    with @worker.task its type, another callable its __name__ (the name
    @worker.task() gives it by default)."""
    if isinstance(fn, str):
        return fn
    t = getattr(fn, "jobq_type", None)
    if isinstance(t, str):
        return t
    name = getattr(fn, "__name__", None)
    if callable(fn) and isinstance(name, str) and name != "<lambda>":
        return name
    raise TypeError("submit needs a job type name or a named function, not %r" % (fn,))


def payload_for(args: Iterable[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The payload convention shared with the Worker: {"args", "kwargs"}."""
    return {"args": list(args), "kwargs": dict(kwargs)}


class JobFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A concurrent.futures.Future for one job (`job_id`). cancel() cancels
    the job on the server; it returns False when the job had already
    finished."""

    def __init__(self, job_id: str, client: Client) -> None:
        super().__init__()
        self.job_id = job_id
        self._client = client

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        try:
            self._client.cancel(self.job_id)
        except JobqError as e:
            if e.status == 409:
                return False
            raise
        return _cancel_local(self)

    def __repr__(self) -> str:
        return "<JobFuture %s %s>" % (self.job_id, self._state)


def _cancel_local(fut: JobFuture) -> bool:
    """Cancels the Future object itself and notifies its waiters (a Future
    merely CANCELLED does not count as done for wait() and as_completed())."""
    with fut._condition:  # an RLock: cancel() takes it again
        if not concurrent.futures.Future.cancel(fut):
            return False
        if fut._state == concurrent.futures._base.CANCELLED:
            fut.set_running_or_notify_cancel()
        return True


def _settle(fut: JobFuture, job: Optional[Dict[str, Any]], err: Optional[BaseException] = None) -> None:
    if fut.done():
        return
    if err is not None:
        if fut.set_running_or_notify_cancel():
            fut.set_exception(err)
        return
    assert job is not None
    state = job.get("state")
    if state == "canceled":
        _cancel_local(fut)
    elif fut.set_running_or_notify_cancel():
        if state == "succeeded":
            fut.set_result(job.get("result"))
        else:
            fut.set_exception(JobFailed(job))


class _Resolver(threading.Thread):
    def __init__(self, client: Client) -> None:
        super().__init__(name="jobq-resolver", daemon=True)
        self.client = client
        self.lock = threading.Condition()
        self.pending: Dict[str, JobFuture] = {}
        self.unchecked: Set[str] = set()
        self.recent: "collections.OrderedDict[str, str]" = collections.OrderedDict()
        self.subscribed: Optional[Set[str]] = None  # None: unfiltered
        self.stream: Any = None
        self.connected_at: Optional[float] = None
        self.last_event_id: Optional[int] = None
        self.stopping = False
        self.ids_filter: Optional[bool] = None
        self.list_ids: Optional[bool] = None

    # ---- called by submitting threads ----

    def register(self, fut: JobFuture, submitted_at: float) -> None:
        check_here = False
        ended = False
        with self.lock:
            jid = fut.job_id
            self.pending[jid] = fut
            if jid in self.recent:
                ended = True  # its terminal event came before this register
            else:
                if self.stream is None:
                    self.unchecked.add(jid)
                elif self.subscribed is not None:
                    if jid not in self.subscribed:
                        self.unchecked.add(jid)
                        self._wake_stream()
                elif self.connected_at is None or submitted_at < self.connected_at:
                    check_here = True
            self.lock.notify_all()
        if ended:
            self._check_ended(jid, fut)
        elif check_here:
            self._check([jid])

    def _check_ended(self, jid: str, fut: JobFuture) -> None:
        """Settles a job known to have ended: the event can come before a
        read sees the commit, so a long poll that answers at once when the
        job reads as ended."""
        jobs: List[Dict[str, Any]] = []
        self._check_one(jid, jobs, wait=_EVENT_WAIT_S)
        for j in jobs:
            if j.get("state") in TERMINAL_STATES:
                with self.lock:
                    self.pending.pop(jid, None)
                _settle(fut, j)

    def _wake_stream(self) -> None:
        s = self.stream
        if s is not None:
            s.close()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self._wake_stream()
            self.lock.notify_all()

    # ---- the thread ----

    def _detect(self) -> None:
        """Does the server filter by ?ids=? A malformed id is refused (400)
        by a server that reads the parameter and ignored by one that does
        not (200); anything unclear counts as no filter."""
        if self.ids_filter is not None:
            return
        try:
            s = self.client.events(query={"ids": "-"}, timeout=5)
            s.close()
            self.ids_filter = False
        except JobqError as e:
            self.ids_filter = e.status == 400 and e.field == "ids"
        try:
            self.client.request("GET", "/v1/jobs", query={"ids": "-", "limit": 1})
            self.list_ids = False
        except JobqError as e:
            self.list_ids = e.status == 400 and e.field == "ids"

    def _check(self, ids: List[str]) -> None:
        """Fetches jobs and settles those that ended."""
        jobs: List[Dict[str, Any]] = []
        if self.list_ids and len(ids) > 1:
            for i in range(0, len(ids), _IDS_MAX):
                chunk = ids[i:i + _IDS_MAX]
                try:
                    jobs.extend(self.client.list(ids=chunk, page_size=len(chunk)))
                except JobqError:
                    for jid in chunk:
                        self._check_one(jid, jobs)
        else:
            for jid in ids:
                self._check_one(jid, jobs)
        for j in jobs:
            if j.get("state") in TERMINAL_STATES:
                with self.lock:
                    fut = self.pending.pop(j["id"], None)
                if fut is not None:
                    _settle(fut, j)

    def _check_one(self, jid: str, out: List[Dict[str, Any]], wait: Optional[float] = None) -> None:
        try:
            out.append(self.client.get(jid, wait=wait))
        except JobqError as e:
            if e.status == 404:  # deleted (retention 0, DELETE): its outcome is gone
                with self.lock:
                    fut = self.pending.pop(jid, None)
                if fut is not None:
                    _settle(fut, None, e)

    def _remember(self, jid: str, state: str) -> None:
        self.recent[jid] = state
        if len(self.recent) > _RECENT_MAX:
            self.recent.popitem(last=False)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.client.close()  # this thread's connection

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.pending and not self.stopping:
                    self.lock.wait()
                if self.stopping and not self.pending:
                    return
                ids = sorted(self.pending)
            self._detect()
            query = None
            if self.ids_filter and len(ids) <= _IDS_MAX:
                query = {"ids": ",".join(ids)}
            try:
                stream = self.client.events(query=query, last_event_id=self.last_event_id,
                                            timeout=max(self.client.timeout, 60.0))
            except JobqError:
                with self.lock:
                    self.lock.wait(0.5)  # jobqd away: try again, still woken by stop()
                continue
            with self.lock:
                self.stream = stream
                self.subscribed = set(ids) if query else None
                if self.connected_at is None or query is not None:
                    self.connected_at = time.monotonic()
                todo = sorted(self.unchecked & self.pending.keys())
                if self.last_event_id is None:  # nothing to resume from: a gap
                    todo = sorted(self.pending)
                self.unchecked.clear()
                if self.stopping and not self.pending:
                    stream.close()
            self._check(todo)
            self._read(stream)
            stream.close()
            with self.lock:
                self.stream = None

    def _read(self, stream: Any) -> None:
        with self.lock:
            if self.subscribed is not None and not self.pending.keys() <= self.subscribed:
                return
        for eid, event, data in stream:
            if eid is not None:
                self.last_event_id = eid
            if event == "reset":
                with self.lock:
                    self.unchecked.update(self.pending)
                return
            if event != "job" or not isinstance(data, dict):
                continue
            state = data.get("state")
            if state not in TERMINAL_STATES:
                continue
            jid = data.get("id")
            with self.lock:
                fut = self.pending.get(jid)
                if fut is None:
                    self._remember(jid, state)
            if fut is not None:
                self._check_ended(jid, fut)
            with self.lock:
                if not self.pending and self.stopping:
                    return
                if self.subscribed is not None and not self.pending.keys() <= self.subscribed:
                    return


class Executor(concurrent.futures.Executor):
    """Runs jobs as futures: submit(fn, *args, **kwargs) submits a job of
    type `fn` (a type name, a function registered with @worker.task, or a
    function whose __name__ is the type) with payload
    {"args": [...], "kwargs": {...}} on `queue`, and returns a JobFuture
    that resolves with the job's result. `fn` None means the Executor's
    `type`. **job_options (priority, max_attempts, timeout_s, ...) apply to
    every job."""

    def __init__(self, client: Union[Client, str], queue: Optional[str] = None,
                 type: Optional[str] = None, api_key: Optional[str] = None,
                 **job_options: Any) -> None:
        self.client = client if isinstance(client, Client) else Client(client, api_key=api_key)
        self.queue = queue
        self.type = type
        self.job_options = job_options
        job_body("x", None, **job_options)  # refuse unknown options now
        self._resolver = _Resolver(self.client)
        self._resolver.start()
        self._futures: List[JobFuture] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> JobFuture:  # type: ignore[override]
        t = self.type if fn is None else type_name(fn)
        if t is None:
            raise TypeError("submit(None, ...) needs an Executor created with type=")
        return self.submit_job(t, payload_for(args, kwargs))

    def submit_job(self, type: str, payload: Any = None, **options: Any) -> JobFuture:
        """Submits a job with any payload (not the args convention), e.g. a
        builtin type: submit_job("sleep", {"seconds": 5}, timeout_s=10)."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        opts = dict(self.job_options)
        if self.queue is not None:
            opts.setdefault("queue", self.queue)
        opts.update(options)
        started = time.monotonic()
        job = self.client.submit(type, payload, **opts)
        fut = JobFuture(job["id"], self.client)
        with self._lock:
            self._futures.append(fut)
        self._resolver.register(fut, started)
        return fut

    def map(self, fn: Any, *iterables: Iterable[Any], timeout: Optional[float] = None,
            chunksize: int = 1) -> Iterator[Any]:
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False,
                 progress: bool = False) -> None:
        """Accepts no more jobs; with wait, returns once every job submitted
        here has ended (progress=True shows a bar). cancel_futures cancels
        the jobs not yet ended."""
        with self._lock:
            self._shutdown = True
            fs = list(self._futures)
        if cancel_futures:
            for f in fs:
                if not f.done():
                    try:
                        f.cancel()
                    except JobqError:
                        pass
        if wait:
            wait_all(fs, progress=progress)
        self._resolver.stop()
        if wait:
            self._resolver.join()

    def wait_all(self, progress: bool = False, timeout: Optional[float] = None) -> List[JobFuture]:
        """Waits for every future submitted so far (see jobq.wait_all)."""
        with self._lock:
            fs = list(self._futures)
        return wait_all(fs, timeout=timeout, progress=progress)  # type: ignore[return-value]

    @property
    def resolver_thread(self) -> threading.Thread:
        """The one thread that resolves this Executor's futures."""
        return self._resolver

"""The HTTP client: one method per jobqd operation, standard library only.

Each thread keeps one kept-alive http.client connection per Client; a
request that finds its connection closed by the server (idle timeout,
restart) is sent again once on a new connection when it is safe to
(a read, or a submit carrying an Idempotency-Key).
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

__all__ = ["Client", "JobqError", "TERMINAL_STATES", "JOB_FIELDS"]

TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled"})

# The body fields of POST /v1/jobs besides type and payload (openapi.yaml,
# JobSubmission). `backoff` and `retention` are accepted as short names.
JOB_FIELDS = (
    "queue",
    "priority",
    "max_attempts",
    "backoff_s",
    "max_backoff_s",
    "timeout_s",
    "run_at",
    "delay_s",
    "retention_s",
    "callback_url",
    "depends_on",
    "on_dependency_failure",
)
_ALIASES = {"backoff": "backoff_s", "max_backoff": "max_backoff_s", "timeout": "timeout_s",
            "retention": "retention_s", "delay": "delay_s"}

_MAX_WAIT = 60.0  # the server clamps ?wait to 60 s
_IDLE_REUSE_S = 10.0


class JobqError(Exception):
    """Any error answer of jobqd (a problem+json), or a failed connection.

    status: the HTTP status (0 when no answer arrived); code: the problem's
    code (`invalid_field`, `job_not_found`, ...; `connection_error` when no
    answer arrived); type: the problem's type URI; field: the request field
    at fault or None; detail: the human-readable explanation.
    """

    def __init__(self, status: int, code: str, detail: str, field: Optional[str] = None,
                 type: Optional[str] = None, title: Optional[str] = None,
                 body: Any = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.type = type or "urn:jobq:problem:" + code
        self.title = title
        self.body = body
        where = " (field %s)" % field if field else ""
        super().__init__("%s %s%s: %s" % (status, code, where, detail))


def _timestamp(v: Any) -> Any:
    """run_at as RFC 3339: a datetime is converted (naive means UTC)."""
    iso = getattr(v, "isoformat", None)
    if iso is None:
        return v
    if getattr(v, "tzinfo", None) is None:
        return iso() + "Z"
    return iso()


def job_body(type: str, payload: Any = None, **options: Any) -> Dict[str, Any]:
    """The JSON body of one job, as POST /v1/jobs and batch items take it."""
    body: Dict[str, Any] = {"type": type}
    if payload is not None:
        body["payload"] = payload
    for k, v in options.items():
        k = _ALIASES.get(k, k)
        if k not in JOB_FIELDS:
            raise TypeError("unknown job field %r" % k)
        if v is None:
            continue
        if k == "run_at":
            v = _timestamp(v)
        elif k == "depends_on":
            # A job as returned (a dict) stands for its id; a batch index stays.
            v = [d["id"] if isinstance(d, dict) else d for d in v]
        body[k] = v
    return body


class Client:
    """A jobqd client. `url` is jobqd's base URL (http or https), `api_key`
    its bearer key, `timeout` the socket timeout in seconds of every call
    (a long poll adds its own wait on top)."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 30.0) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("url must be http://host[:port] or https://host[:port], not %r" % url)
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._scheme = u.scheme
        self._host = u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._prefix = u.path.rstrip("/")
        self._local = threading.local()

    # ---- plumbing ----

    def _new_connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        h = {"Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        if extra:
            h.update(extra)
        return h

    def close(self) -> None:
        """Closes this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None,
                query: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None,
                wait: float = 0.0, retry_safe: Optional[bool] = None) -> Tuple[int, Any]:
        """Sends one request on this thread's connection; returns (status,
        parsed JSON or None). An error answer raises JobqError."""
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        data = None
        hdrs = self._headers(headers)
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            hdrs["Content-Type"] = "application/json"
        if retry_safe is None:
            retry_safe = method in ("GET", "DELETE")
        timeout = self.timeout + wait
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is not None and not retry_safe and \
                    time.monotonic() - getattr(self._local, "used", 0.0) > _IDLE_REUSE_S:
                # jobqd closes a connection idle for --request-timeout (30 s):
                # a request that must not be sent twice starts on a new one.
                conn.close()
                conn = self._local.conn = None
            fresh = conn is None
            if fresh:
                conn = self._local.conn = self._new_connection(timeout)
            elif conn.sock is not None:
                conn.sock.settimeout(timeout)
            conn.timeout = timeout
            try:
                conn.request(method, self._prefix + path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self._local.conn = None
                # A kept-alive connection the server had closed: send again
                # once on a new one, when sending twice cannot do harm.
                if attempt == 0 and not fresh and retry_safe:
                    continue
                raise JobqError(0, "connection_error", "%s %s: %s" % (method, path, e)) from e
            self._local.used = time.monotonic()
            if resp.will_close:
                conn.close()
                self._local.conn = None
            parsed: Any = None
            if raw:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = raw.decode("utf-8", "replace")
            if resp.status >= 400:
                raise self._problem(resp.status, parsed)
            return resp.status, parsed
        raise AssertionError("unreachable")

    @staticmethod
    def _problem(status: int, p: Any) -> JobqError:
        if isinstance(p, dict):
            return JobqError(status, str(p.get("code") or "http_%d" % status),
                             str(p.get("detail") or p.get("title") or ""),
                             field=p.get("field"), type=p.get("type"), title=p.get("title"), body=p)
        return JobqError(status, "http_%d" % status, str(p or ""), body=p)

    @staticmethod
    def _id(job: Union[str, Dict[str, Any]]) -> str:
        return job["id"] if isinstance(job, dict) else job

    @staticmethod
    def _q(s: str) -> str:
        return urllib.parse.quote(s, safe="")

    # ---- jobs ----

    def submit(self, type: str, payload: Any = None, *, idempotency_key: Optional[str] = None,
               **options: Any) -> Dict[str, Any]:
        """POST /v1/jobs. options: queue, priority, max_attempts, backoff_s
        (or backoff), max_backoff_s, timeout_s, run_at (str or datetime),
        delay_s, retention_s (or retention), callback_url, depends_on (job ids
        or job dicts), on_dependency_failure ("cancel", "run", "wait").
        Returns the job."""
        body = job_body(type, payload, **options)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        _, job = self.request("POST", "/v1/jobs", body, headers=headers,
                              retry_safe=idempotency_key is not None)
        return job

    def get(self, job: Union[str, Dict[str, Any]], wait: Optional[float] = None) -> Dict[str, Any]:
        """GET /v1/jobs/{id}, with attempt_history; wait (0..60 s) long-polls once."""
        w = min(max(wait, 0.0), _MAX_WAIT) if wait else None
        _, j = self.request("GET", "/v1/jobs/" + self._q(self._id(job)),
                            query={"wait": _fmt(w)} if w else None, wait=w or 0.0)
        return j

    def wait(self, job: Union[str, Dict[str, Any]], timeout: Optional[float] = None) -> Dict[str, Any]:
        """Long-polls until the job is succeeded, failed or canceled and
        returns it; after `timeout` seconds (None: no limit) returns the job
        as it is then (check its state)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _MAX_WAIT if deadline is None else deadline - time.monotonic()
            j = self.get(job, wait=max(min(left, _MAX_WAIT), 0.0))
            if j["state"] in TERMINAL_STATES or left <= 0 or (
                    deadline is not None and time.monotonic() >= deadline):
                return j

    def list(self, state: Optional[str] = None, queue: Optional[str] = None,
             type: Optional[str] = None, limit: Optional[int] = None,
             page_size: int = 100, **filters: Any) -> Iterator[Dict[str, Any]]:
        """Iterates GET /v1/jobs newest first, every page (following
        next_cursor), at most `limit` jobs. Other keyword filters (batch_id,
        ids as a list) are passed on where the server has them."""
        query: Dict[str, Any] = {"state": state, "queue": queue, "type": type}
        for k, v in filters.items():
            query[k] = ",".join(v) if isinstance(v, (list, tuple, set)) else v
        n = 0
        cursor = None
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - n))
            _, page = self.request("GET", "/v1/jobs", query=dict(query, limit=size, cursor=cursor))
            for j in page["jobs"]:
                yield j
                n += 1
                if limit is not None and n >= limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
        """POST /v1/jobs/{id}/cancel; 409 job_finished raises JobqError."""
        return self.request("POST", "/v1/jobs/%s/cancel" % self._q(self._id(job)))[1]

    def retry(self, job: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
        """POST /v1/jobs/{id}/retry: a failed or canceled job runs again."""
        return self.request("POST", "/v1/jobs/%s/retry" % self._q(self._id(job)))[1]

    def delete(self, job: Union[str, Dict[str, Any]]) -> None:
        """DELETE /v1/jobs/{id} (a finished job; admin role)."""
        self.request("DELETE", "/v1/jobs/" + self._q(self._id(job)))

    # ---- batches ----

    def submit_batch(self, jobs: Sequence[Dict[str, Any]], callback_url: Optional[str] = None,
                     idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """POST /v1/batches. Each job is a dict as submit takes it:
        {"type": ..., "payload": ..., "queue": ...}. Returns
        {"id", "total", "job_ids"}."""
        items = []
        for j in jobs:
            j = dict(j)
            items.append(job_body(j.pop("type"), j.pop("payload", None), **j))
        body: Dict[str, Any] = {"jobs": items}
        if callback_url:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/v1/batches", body, headers=headers,
                            retry_safe=idempotency_key is not None)[1]

    def get_batch(self, batch: Union[str, Dict[str, Any]], wait: Optional[float] = None,
                  timeout: Optional[float] = None) -> Dict[str, Any]:
        """GET /v1/batches/{id}. With `wait`, long-polls (looping past the
        server's 60 s) until the batch is done or `wait` seconds passed."""
        path = "/v1/batches/" + self._q(self._id(batch))
        if not wait:
            return self.request("GET", path)[1]
        deadline = time.monotonic() + wait
        while True:
            left = min(deadline - time.monotonic(), _MAX_WAIT)
            w = max(left, 0.0)
            b = self.request("GET", path, query={"wait": _fmt(w)}, wait=w)[1]
            if b.get("done") or left <= 0 or time.monotonic() >= deadline:
                return b

    # ---- queues and the server ----

    def queues(self, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Iterates GET /v1/queues, every page."""
        cursor = None
        while True:
            _, page = self.request("GET", "/v1/queues", query={"limit": page_size, "cursor": cursor})
            yield from page["queues"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def queue(self, name: str) -> Dict[str, Any]:
        """GET /v1/queues/{name}."""
        return self.request("GET", "/v1/queues/" + self._q(name))[1]

    def pause(self, name: str) -> Dict[str, Any]:
        """POST /v1/queues/{name}/pause (admin role)."""
        return self.request("POST", "/v1/queues/%s/pause" % self._q(name), retry_safe=True)[1]

    def resume(self, name: str) -> Dict[str, Any]:
        """POST /v1/queues/{name}/resume (admin role)."""
        return self.request("POST", "/v1/queues/%s/resume" % self._q(name), retry_safe=True)[1]

    def info(self) -> Dict[str, Any]:
        """GET /v1/info: version, backend and durability."""
        return self.request("GET", "/v1/info")[1]

    def health(self) -> Dict[str, Any]:
        """GET /healthz."""
        return self.request("GET", "/healthz")[1]

    # ---- the event stream ----

    def events(self, query: Optional[Dict[str, Any]] = None, last_event_id: Optional[int] = None,
               timeout: Optional[float] = None) -> "EventStream":
        """Opens GET /v1/events (Server-Sent Events) on its own connection."""
        return EventStream(self, "/v1/events", query, last_event_id, timeout)


def _fmt(x: float) -> str:
    return ("%.3f" % x).rstrip("0").rstrip(".") or "0"


class EventStream:
    """An open SSE stream: iterate it for (id, event, data) tuples; data is
    the parsed JSON. close() from another thread ends the iteration."""

    def __init__(self, client: Client, path: str, query: Optional[Dict[str, Any]],
                 last_event_id: Optional[int], timeout: Optional[float]) -> None:
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        self._conn = client._new_connection(timeout if timeout is not None else 60.0)
        hdrs = client._headers({"Accept": "text/event-stream"})
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = str(last_event_id)
        self.closed = False
        try:
            self._conn.request("GET", client._prefix + path, headers=hdrs)
            self._resp = self._conn.getresponse()
        except (http.client.HTTPException, OSError) as e:
            self._conn.close()
            raise JobqError(0, "connection_error", "GET %s: %s" % (path, e)) from e
        if self._resp.status >= 400:
            raw = self._resp.read()
            self._conn.close()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            raise Client._problem(self._resp.status, parsed)
        self.status = self._resp.status

    def close(self) -> None:
        self.closed = True
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()

    def __iter__(self) -> Iterator[Tuple[Optional[int], str, Any]]:
        eid: Optional[int] = None
        event = "message"
        data: List[str] = []
        while not self.closed:
            try:
                line = self._resp.readline()
            except (http.client.HTTPException, OSError, ValueError, AttributeError):
                return
            if not line:
                return
            s = line.decode("utf-8", "replace").rstrip("\r\n")
            if s == "":
                if data:
                    text = "\n".join(data)
                    try:
                        parsed: Any = json.loads(text)
                    except ValueError:
                        parsed = text
                    yield eid, event, parsed
                eid, event, data = None, "message", []
            elif s.startswith(":"):
                continue
            else:
                k, _, v = s.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "id":
                    try:
                        eid = int(v)
                    except ValueError:
                        eid = None
                elif k == "event":
                    event = v
                elif k == "data":
                    data.append(v)

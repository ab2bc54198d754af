"""Starts a real jobqd for the tests: a free loopback port, a temp database."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import List, Optional

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
JOBQD = os.environ.get("JOBQD", os.path.join(ROOT, "build", "jobqd"))
START_BOUND_S = 10.0


class Jobqd:
    def __init__(self, args: Optional[List[str]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="jobq-py-")
        self.log_path = os.path.join(self.dir, "jobqd.log")
        self.url = ""
        self.proc: Optional[subprocess.Popen] = None  # type: ignore[type-arg]
        self.args = args or []

    def start(self) -> "Jobqd":
        """Starts jobqd; raises RuntimeError (with the log) if it does not
        answer /healthz within START_BOUND_S, after stopping it and removing
        its directory."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "Jobqd":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [JOBQD, "--listen", "127.0.0.1:0", "--db", os.path.join(self.dir, "jobq.db"),
             "--log-level", "info"] + self.args, stdout=log, stderr=log)
        log.close()
        end = time.monotonic() + START_BOUND_S
        port = None
        while port is None:
            m = re.search(r"^jobqd: listening on http://127\.0\.0\.1:(\d+)$", self.log(), re.M)
            if m:
                port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("jobqd exited early (%s): %s" % (self.proc.returncode, self.log()))
            if time.monotonic() > end:
                raise RuntimeError("jobqd did not listen within 10 s: " + self.log())
            time.sleep(0.02)  # polling the log file, bounded by `end`
        self.url = "http://127.0.0.1:%d" % port
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200 and json.load(r).get("status") == "ok":
                        return self
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("GET /healthz did not answer 200 within 10 s: " + self.log())
            time.sleep(0.02)

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def bounded(pred, bound_s: float = 20.0, what: str = "condition"):
    """Polls pred (the server's state, or a file the workers write) until it
    is true, and returns its value; fails the test after bound_s."""
    end = time.monotonic() + bound_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("%s not reached within %.0f s" % (what, bound_s))
        time.sleep(0.02)  # a poll's pace, bounded above; not a synchronisation

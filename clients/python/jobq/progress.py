"""Progress for people: tqdm when it is importable, else a one-line bar."""
from __future__ import annotations

import concurrent.futures
import sys
import time
from typing import Any, Iterable, List, Optional, TextIO

__all__ = ["ProgressBar", "wait_all"]


class ProgressBar:
    """A bar of `total` steps on `file` (stderr): tqdm's when tqdm is
    importable and `plain` is False, else one line redrawn with \\r."""

    def __init__(self, total: int, desc: str = "jobs", file: Optional[TextIO] = None,
                 plain: bool = False) -> None:
        self.total = total
        self.n = 0
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self._tqdm: Any = None
        self._last = 0.0
        if not plain:
            try:
                from tqdm import tqdm  # type: ignore
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._tqdm = tqdm(total=total, desc=desc, file=self.file, unit="job")
        if self._tqdm is None:
            self._draw(force=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        else:
            self._draw(force=self.n >= self.total)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = width * self.n // self.total if self.total else width
        pct = 100 * self.n // self.total if self.total else 100
        self.file.write("\r%s [%s%s] %d/%d %3d%%" % (self.desc, "#" * filled,
                                                   "." * (width - filled), self.n, self.total, pct))
        self.file.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            self._draw(force=True)
            self.file.write("\n")
            self.file.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_all(futures: Iterable["concurrent.futures.Future[Any]"], timeout: Optional[float] = None,
             progress: bool = False, desc: str = "jobs", file: Optional[TextIO] = None,
             plain: bool = False) -> List["concurrent.futures.Future[Any]"]:
    """Waits until every future is done (or `timeout` passes, raising
    TimeoutError as concurrent.futures.as_completed does), showing a
    progress bar when `progress` is true. Returns the futures in the order
    they finished; their outcomes are read with .result() as usual."""
    fs = list(futures)
    done: List[concurrent.futures.Future[Any]] = []
    bar = ProgressBar(len(fs), desc=desc, file=file, plain=plain) if progress else None
    try:
        for f in concurrent.futures.as_completed(fs, timeout=timeout):
            done.append(f)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return done

"""
Running hooks off the request path: one daemon worker thread per hook, with a timeout.

The engine hands each subscriber and each enforcement hook its own :class:`Worker`: a
hook that raises is logged and counted; one that hangs past its timeout is abandoned
(its thread left to finish alone) and the next job goes to a fresh thread, so no hook
can delay recording, the engine's tick or another hook.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

_log = logging.getLogger("slakit.dispatch")


@attrs.define
class HookStats:
    """Per subscriber: events delivered, failures, timeouts and drops."""

    delivered: int = 0
    errors: int = 0
    timeouts: int = 0
    dropped: int = 0


class Worker:
    """
    Runs one hook's jobs on its own daemon thread, one at a time, with a timeout.

    ``report(job, result)`` hears how each job ended: ``"ok"``, ``"error: ..."`` or
    ``"timed out ..."``. A job past its timeout is abandoned: the thread is left to
    finish on its own and later jobs go to a fresh thread.
    """

    def __init__(
        self,
        name: str,
        call: Callable[[Any], Any],
        timeout: float,
        max_queue: int,
        report: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.name = name
        self.call = call
        self.timeout = timeout
        self.max_queue = max_queue
        self.report = report
        self.stats = HookStats()
        self._generation = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._busy: tuple[float, Any] | None = None
        self._lock = threading.Lock()

    def put(self, job: object) -> None:
        """Queue a job; if the queue is full the job is dropped and counted."""
        if self._thread is None or not self._thread.is_alive():
            self._spawn()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.dropped += 1
            _log.warning("slakit hook %s is behind; %s dropped", self.name, type(job).__name__)

    def _spawn(self) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
            self._busy = None
            self._thread = threading.Thread(
                target=self._run, args=(gen,), name=f"slakit-hook-{gen}", daemon=True
            )
            self._thread.start()

    def _run(self, generation: int) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP or generation != self._generation:
                if job is not _STOP:  # not ours any more: hand it back
                    self._queue.put(job)
                return
            self._busy = (time.monotonic(), job)
            try:
                self.call(job)
            except Exception as exc:
                n = self.stats.errors + 1
                if n == 1 or str(n).rstrip("0") == "1":  # the 1st, 10th, 100th ... failure
                    _log.exception(
                        "slakit hook %s failed on %s (%d failures so far)",
                        self.name,
                        type(job).__name__,
                        n,
                    )
                self.stats.errors = n  # after the log: a reader of the count finds the log
                result = f"error: {type(exc).__name__}: {exc}"
            else:
                self.stats.delivered += 1
                result = "ok"
            if generation != self._generation:
                return  # abandoned while it hung: reported already, a new thread owns the queue
            if self.report is not None:
                self.report(job, result)
            self._busy = None  # after the report: idle means the job's effects are visible

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running (a snapshot: it may change at once)."""
        return self._busy is None and self._queue.empty()

    def check(self) -> None:
        """Abandon a job that has run past its timeout; later jobs go to a new thread."""
        busy = self._busy
        if busy is not None and time.monotonic() - busy[0] > self.timeout:
            self.stats.timeouts += 1
            _log.error(
                "slakit hook %s exceeded its %.1fs timeout; abandoned", self.name, self.timeout
            )
            self._spawn()
            if self.report is not None:
                self.report(busy[1], f"timed out after {self.timeout:g}s")

    def stop(self) -> None:
        """Let the thread end after its current job; queued jobs are dropped."""
        self._generation += 1
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)

    def after_fork(self) -> None:
        """Forget the parent's thread and queue (a forked child has neither)."""
        self._queue = queue.Queue(maxsize=self.max_queue)
        self._thread = None
        self._busy = None
        self._lock = threading.Lock()


_STOP = object()

"""
slakit's own faults: counted, logged rarely, never raised into the host's code.

Code on the request path (recording, middleware bookkeeping) catches its own internal
errors and reports them here, so the call it wraps returns or raises exactly as it
would without slakit. Each kind is logged with its traceback the first time, then at
the 10th, 100th, 1,000th … occurrence, so a fault in a hot loop cannot flood the logs.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

_log = logging.getLogger("slakit.faults")
_lock = threading.Lock()
_counts: Counter[str] = Counter()


def internal_error(where: str, exc: BaseException) -> None:
    """Count one internal error of kind ``where`` and log it if its count is 1, 10, 100, …."""
    with _lock:
        _counts[where] += 1
        n = _counts[where]
    if n == 1 or str(n).rstrip("0") == "1":
        _log.error(
            "slakit internal error in %s (%d so far); the host's call is unaffected",
            where,
            n,
            exc_info=exc,
        )


def counts() -> dict[str, int]:
    """Return internal errors by kind since the process started (health checks, tests)."""
    with _lock:
        return dict(_counts)

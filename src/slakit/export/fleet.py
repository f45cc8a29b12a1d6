"""
Fleet feedback: the fleet-wide figure Prometheus computes, as a local signal.

One process sees only its share of the traffic. When the fleet rules (``slakit rules``)
run in Prometheus, :class:`FleetSignal` polls one PromQL expression from its HTTP API on a
background thread, and a :class:`~slakit.spec.Threshold` objective can act on it — so a
worker's breaker or shedder can respond to a fleet-wide burn its own traffic hides::

    fleet_burn = FleetSignal(
        "http://prometheus:9090",
        'slo:sli_error:ratio_rate5m{slo="checkout",objective="availability"} / 0.001',
    )
    checkout = slakit.SLO("checkout", objectives=[
        slakit.Availability("99.9%"),
        slakit.Threshold("fleet-burn", op="<=", warning=6, critical=14.4, source=fleet_burn),
    ])

The engine samples the signal each tick without waiting: the poller keeps the latest
value, and a value older than ``stale_after`` (Prometheus unreachable, no data) reads as
unknown rather than as a stale figure.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.parse
import urllib.request

_log = logging.getLogger("slakit.fleet")


class FleetSignal:
    """
    Polls one PromQL expression (its first series) and returns the latest value.

    Args:
        url: Prometheus's base URL (``http://prometheus:9090``).
        query: a PromQL expression; the first result's value is used.
        interval: seconds between polls.
        timeout: seconds a poll may take.
        stale_after: seconds after which an old value is reported as unknown (NaN).

    """

    def __init__(
        self,
        url: str,
        query: str,
        *,
        interval: float = 15.0,
        timeout: float = 5.0,
        stale_after: float = 120.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"url: expected http(s)://host:port, got {url!r}")
        self.endpoint = (
            url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        )
        self.interval = interval
        self.timeout = timeout
        self.stale_after = stale_after
        self.errors = 0
        self._value: tuple[float, float] | None = None  # (value, monotonic time read)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> float | None:
        """Query once now; keep and return the value (``None``: no result or an error)."""
        try:
            with urllib.request.urlopen(self.endpoint, timeout=self.timeout) as response:  # noqa: S310 - scheme checked
                body = json.loads(response.read())
            result = body["data"]["result"]
            if not result:
                return None
            value = float(result[0]["value"][1])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            self.errors += 1
            if self.errors == 1 or str(self.errors).rstrip("0") == "1":
                _log.warning("fleet signal: query failed (%d so far): %s", self.errors, exc)
            return None
        self._value = (value, time.monotonic())
        return value

    def __call__(self) -> float:
        """Return the latest value without waiting (NaN when unknown or stale)."""
        if self._thread is None or not self._thread.is_alive():
            self.start()
        latest = self._value
        if latest is None or time.monotonic() - latest[1] > self.stale_after:
            return math.nan
        return latest[0]

    def start(self) -> FleetSignal:
        """Start polling on a daemon thread (the first call does it by itself)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="slakit-fleet", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while True:
            self.poll()
            if self._stop.wait(self.interval):
                return

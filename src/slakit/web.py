"""
The status page, as HTML and JSON.

Per SLO it shows the status, compliance, error budget, burn rates, a budget burn-down
chart (inline SVG), open violations, and the state of breakers and shedders.

One :class:`StatusPage` serves it as HTML and the same figures as JSON (any path ending
in ``.json``), as an ASGI app and, through :meth:`StatusPage.wsgi`, a WSGI app::

    page = slakit.web.StatusPage(engine, breakers=[breaker])
    app = Starlette(routes=[Route("/slo", page), Route("/slo.json", page)])

It is read-only (GET and HEAD only; no write actions), shows names and figures only
(never hook settings, URLs or headers), and takes an optional ``auth`` hook that sees
the request's headers and may refuse it. Nothing here binds a socket: serve it with
the app it is mounted in, or with :func:`serve` (127.0.0.1 by default).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from slakit.evaluate import counted
from slakit.spec import Availability, Latency

if TYPE_CHECKING:
    from slakit.engine import Engine
    from slakit.evaluate import ObjectiveStatus, Snapshot
    from slakit.remediate.breaker import CircuitBreaker
    from slakit.remediate.shed import LoadShedder
    from slakit.spec import SLO

Headers = Mapping[str, str]
AuthHook = Callable[[Headers], bool]
"""Sees the request's headers (lower-case names); ``False`` answers 401."""

POINTS: Final = 60
"""Points of each burn-down line."""


class StatusPage:
    """
    The status page of an engine's SLOs, as an ASGI app (call it) or a WSGI app.

    Args:
        engine: whose latest snapshots and violations are shown.
        breakers: circuit breakers whose state is shown.
        shedders: load shedders whose shed level is shown.
        title: the page's heading.
        auth: optional hook; return ``False`` to refuse a request (401).
        refresh: seconds between reloads of the HTML page (0: never).

    """

    def __init__(
        self,
        engine: Engine,
        *,
        breakers: Sequence[CircuitBreaker] = (),
        shedders: Sequence[LoadShedder] = (),
        title: str = "Service level status",
        auth: AuthHook | None = None,
        refresh: int = 10,
    ) -> None:
        self.engine = engine
        self.breakers = tuple(breakers)
        self.shedders = tuple(shedders)
        self.title = title
        self.auth = auth
        self.refresh = refresh

    # -- data ------------------------------------------------------------------------------

    def data(self) -> dict[str, Any]:
        """Return everything the page shows, as plain JSON-ready values."""
        registry = self.engine.registry
        now = registry.clock.time()
        slos = []
        for slo in registry.slos():
            snap = registry.latest(slo.name)
            if snap is None:
                continue
            slos.append(self._slo(slo, snap, now))
        return {
            "generated": _iso(now),
            "slos": slos,
            "breakers": [{"name": b.name, "state": b.state.value} for b in self.breakers],
            "shedders": [
                {"name": s.name, "shed_probability": _num(s.rejection_probability())}
                for s in self.shedders
            ],
        }

    def _slo(self, slo: SLO, snap: Snapshot, now: float) -> dict[str, Any]:
        lines = _burn_down(self.engine, slo, now)
        violations = [v for v in self.engine.violations() if v.slo == slo.name]
        return {
            "name": slo.name,
            "description": slo.description,
            "status": snap.status.value,
            "window": str(slo.window),
            "evaluated": _iso(snap.time),
            "events": snap.events,
            "bad": snap.bad,
            "objectives": [_objective(o, lines.get(o.key)) for o in snap.objectives],
            "violations": [
                {
                    "id": v.id,
                    "objective": v.objective,
                    "rule": v.rule,
                    "severity": v.severity.value,
                    "opened": _iso(v.opened_at),
                    "acknowledged": v.acknowledged_at is not None,
                    "actions": [{"hook": a.hook, "result": a.result} for a in v.actions],
                }
                for v in violations
            ],
        }

    # -- rendering ---------------------------------------------------------------------------

    def json(self) -> bytes:
        """Return :meth:`data` as JSON bytes."""
        return json.dumps(self.data(), indent=1, allow_nan=False).encode()

    def html(self) -> bytes:
        """Return the HTML page (no scripts; the chart is inline SVG)."""
        return render(self.data(), self.title, self.refresh).encode()

    def _answer(self, method: str, path: str, headers: Headers) -> tuple[int, str, bytes]:
        if self.auth is not None and not self.auth(headers):
            return 401, "text/plain; charset=utf-8", b"Unauthorized\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"Method Not Allowed\n"
        if path.endswith(".json"):
            return 200, "application/json", self.json()
        return 200, "text/html; charset=utf-8", self.html()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],  # noqa: ARG002 - the body is never read
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Serve one ASGI HTTP request."""
        if scope["type"] != "http":  # lifespan and websockets: nothing to do
            return
        headers = {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in scope.get("headers", ())
        }
        path = scope.get("root_path", "") + scope.get("path", "")  # mounted or not
        status, kind, body = self._answer(scope["method"], path, headers)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request (mount it where a WSGI app goes)."""
        headers = {
            k[5:].replace("_", "-").lower(): str(v)
            for k, v in environ.items()
            if k.startswith("HTTP_")
        }
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")  # mounted or not
        status, kind, body = self._answer(method, path, headers)
        reason = {200: "OK", 401: "Unauthorized", 405: "Method Not Allowed"}[status]
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [b"" if method == "HEAD" else body]


def _objective(o: ObjectiveStatus, line: list[tuple[str, float]] | None) -> dict[str, Any]:
    budget = o.budget
    return {
        "key": o.key,
        "kind": o.kind,
        "target": o.target,
        "actual": _num(o.actual),
        "met": o.met,
        "status": o.status.value,
        "budget_remaining": None if budget is None else _num(budget.remaining),
        "windows": [
            {
                "window": w.window,
                "sli": _num(w.sli),
                "burn_rate": _num(w.burn_rate),
                "events": w.events,
                "bad": w.bad,
            }
            for w in o.windows
        ],
        "burn_down": [{"time": t, "remaining": r} for t, r in line or ()],
    }


def _burn_down(engine: Engine, slo: SLO, now: float) -> dict[str, list[tuple[str, float]]]:
    """
    Budget remaining through the SLO window, per event objective.

    At each point ``t`` of the window the line shows ``1 - bad(start..t) / allowed``,
    where ``allowed`` is the budget of the whole window so far; it ends at the budget
    remaining the snapshot reports.
    """
    objectives = [o for o in slo.objectives if isinstance(o, Availability | Latency)]
    if not objectives:
        return {}
    start, end = slo.window.bounds(now)
    start = max(start, engine.registry.created(slo.name))
    times = [start + (end - start) * i / (POINTS - 1) for i in range(POINTS)]
    view = engine.registry.store(slo.name).read([(start, t) for t in times])
    lines = {}
    for o in objectives:
        judge = counted(slo, o)
        events, _ = judge(view.spans[-1])
        allowed = (1 - o.target) * events
        line = []
        for t, counts in zip(times, view.spans, strict=True):
            _, bad = judge(counts)
            remaining = 1.0 - bad / allowed if allowed > 0 else (1.0 if bad == 0 else -float(bad))
            line.append((_iso(t), round(remaining, 6)))
        lines[o.key] = line
    return lines


def _num(value: float | None) -> float | None:
    """JSON has no infinities: report them as ``None``."""
    return None if value is None or not math.isfinite(value) else round(value, 6)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


# -- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#1d2330;
padding:0 1rem}
h1{font-size:1.5rem} h2{font-size:1.2rem;margin:0} .muted{color:#667}
section.slo{border:1px solid #d5d9e0;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:600;color:#fff}
.healthy{background:#2e7d32}.warning{background:#b26a00}.critical{background:#c62828}
.breached{background:#6a1b9a}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #eceef2}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#eceef2;border-radius:4px;width:10rem;height:.8rem;display:inline-block}
.bar span{display:block;height:100%;border-radius:4px;background:#2e7d32}
svg{background:#fafbfc;border:1px solid #eceef2;border-radius:4px}
"""

_W, _H, _PAD = 640, 160, 28


def render(data: Mapping[str, Any], title: str, refresh: int = 0) -> str:
    """Render the page's HTML from :meth:`StatusPage.data` (every value escaped)."""
    e = html.escape
    head = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh > 0 else ""
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>{head}',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="muted">Generated {e(data["generated"])}</p>',
    ]
    parts.extend(_slo_html(slo) for slo in data["slos"])
    if not data["slos"]:
        parts.append("<p>No SLO has been evaluated yet.</p>")
    if data["breakers"] or data["shedders"]:
        parts.append("<h2>Enforcement</h2><table><tr><th>Name</th><th>State</th></tr>")
        parts.extend(
            f'<tr data-breaker="{e(b["name"])}"><td>breaker {e(b["name"])}</td>'
            f'<td class="state">{e(b["state"])}</td></tr>'
            for b in data["breakers"]
        )
        for s in data["shedders"]:
            p = s["shed_probability"] or 0.0
            parts.append(
                f'<tr data-shedder="{e(s["name"])}"><td>shedder {e(s["name"])}</td>'
                f'<td class="state">shedding {_pct(p)}</td></tr>'
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def _slo_html(slo: Mapping[str, Any]) -> str:
    e = html.escape
    out = [
        f'<section class="slo" data-slo="{e(slo["name"])}">',
        (
            f'<h2>{e(slo["name"])} <span class="badge {e(slo["status"])}" data-field="status">'
            f"{e(slo['status'])}</span></h2>"
        ),
        (
            f'<p class="muted">{e(_sentence(slo["description"]))}Window {e(slo["window"])}: '
            f"{slo['events']} events, {slo['bad']} bad.</p>"
        ),
        (
            "<table><tr><th>Objective</th><th>Target</th><th>Actual</th><th>Budget left</th>"
            "<th>Burn rates</th></tr>"
        ),
    ]
    for o in slo["objectives"]:
        remaining = o["budget_remaining"]
        bar = ""
        if remaining is not None:
            width = max(0.0, min(1.0, remaining)) * 100
            bar = f'<span class="bar"><span style="width:{width:.1f}%"></span></span> '
        burns = " ".join(
            f'<span data-burn="{e(w["window"])}">{e(w["window"])}: '
            f"{'–' if w['burn_rate'] is None else format(w['burn_rate'], '.2f')}</span>"
            for w in o["windows"]
            if w["window"] != "slo"
        )
        out.append(
            f'<tr data-objective="{e(o["key"])}"><td>{e(o["key"])}</td>'
            f'<td class="num">{_target(o["target"])}</td>'
            f'<td class="num" data-field="actual">{_target(o["actual"])}</td>'
            f'<td>{bar}<span data-field="budget">{_pct(remaining, 1)}</span></td>'
            f"<td>{burns}</td></tr>"
        )
    out.append("</table>")
    out.extend(_chart(o) for o in slo["objectives"] if o["burn_down"])
    if slo["violations"]:
        out.append(
            "<table><tr><th>Open violation</th><th>Severity</th><th>Since</th><th>Actions</th></tr>"
        )
        for v in slo["violations"]:
            actions = ", ".join(f"{e(a['hook'])}: {e(a['result'])}" for a in v["actions"])
            ack = " (acknowledged)" if v["acknowledged"] else ""
            out.append(
                f'<tr data-violation="{e(v["id"])}"><td>{e(v["objective"])} / {e(v["rule"])}'
                f"{ack}</td><td>{e(v['severity'])}</td><td>{e(v['opened'])}</td>"
                f"<td>{actions or '–'}</td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return "" if not text else text + ("" if text.endswith(".") else ".") + " "


def _target(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.3f} %" if value <= 1 else f"{value:g}"


def _chart(o: Mapping[str, Any]) -> str:
    """Draw the budget remaining through the window as an inline SVG line."""
    e = html.escape
    values: list[float] = [float(p["remaining"]) for p in o["burn_down"]]
    low = min(0.0, *values)
    high = max(1.0, *values)
    n = len(values)

    def x(i: int) -> float:
        return _PAD + (_W - 2 * _PAD) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return _PAD / 2 + (_H - _PAD) * (high - v) / (high - low)

    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    first, last = o["burn_down"][0]["time"], o["burn_down"][-1]["time"]
    colour = "#2e7d32" if values[-1] > 0 else "#c62828"
    return (
        f'<figure data-chart="{e(o["key"])}"><svg role="img" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}"><title>Error budget remaining for {e(o["key"])}</title>'
        f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999" '
        f'stroke-dasharray="4 3"/>'
        f'<text x="2" y="{y(1) + 4:.1f}" font-size="10">100%</text>'
        f'<text x="2" y="{y(0) + 4:.1f}" font-size="10">0%</text>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        f'<text x="{_PAD}" y="{_H - 2}" font-size="10">{e(first)}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 2}" font-size="10" text-anchor="end">{e(last)}</text>'
        f"</svg><figcaption>{e(o['key'])}: error budget remaining over the window"
        f"</figcaption></figure>"
    )


def serve(page: StatusPage, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the page alone with uvicorn (``pip install slakit[web]``) until interrupted."""
    import uvicorn  # noqa: PLC0415 - optional

    uvicorn.run(page, host=host, port=port, log_level="warning")

"""
A Flask service with slakit: one SLO for the app, a breaker guard, /metrics and /slo.

    pip install slakit flask
    python examples/flask_app.py            # serves on http://127.0.0.1:8000
    python examples/flask_app.py --selftest # drives it in-process and prints /slo.json

Every request counts towards ``api`` under its URL rule (``/orders/<int:order_id>``);
a circuit breaker bound to ``api`` opens when it pages and answers 503 + Retry-After
until half-open probes succeed. ``/metrics``, ``/slo`` and ``/slo.json`` are served
beside the app by werkzeug's dispatcher and are not recorded.
"""

from __future__ import annotations

import argparse
import json

import flask
from prometheus_client import make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

import slakit
from slakit.export import prometheus
from slakit.remediate import CircuitBreaker
from slakit.web import StatusPage
from slakit.wsgi import SLOMiddleware

api = slakit.SLO(
    "api",
    objectives=[slakit.Availability("99.5%"), slakit.Latency("300ms", "99%")],
    window="30d",
)
engine = slakit.Engine()
breaker = CircuitBreaker(name="api", slo="api")  # opens when api pages
engine.subscribe(breaker)
prometheus.register(engine, breakers=[breaker])

app = flask.Flask(__name__)


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> dict[str, object]:
    if order_id == 0:
        flask.abort(404)
    return {"id": order_id, "status": "placed"}


app.wsgi_app = SLOMiddleware(app.wsgi_app, slo=api, guards=[breaker])  # type: ignore[method-assign]
page = StatusPage(engine, breakers=[breaker], title="Shop: service levels")
application = DispatcherMiddleware(
    app, {"/metrics": make_wsgi_app(), "/slo": page.wsgi, "/slo.json": page.wsgi}
)


def selftest() -> None:
    client = Client(application)
    for i in range(50):
        response = client.get(f"/orders/{i}", buffered=True)
        assert response.status_code == (404 if i == 0 else 200)
    engine.evaluate_now()
    data = client.get("/slo.json").json
    assert data is not None
    metrics = client.get("/metrics").text
    assert data["slos"][0]["events"] == 50
    assert 'slakit_requests_total{slo="api"} 50.0' in metrics
    print(
        json.dumps(
            {s["name"]: {"status": s["status"], "events": s["events"]} for s in data["slos"]}
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--selftest", action="store_true", help="run in-process and exit")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.selftest:
        selftest()
    else:
        from werkzeug.serving import run_simple

        with engine:
            run_simple("127.0.0.1", args.port, application, threaded=True)

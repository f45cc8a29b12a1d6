"""Real local servers for tests: an HTTP endpoint we script, and a free-port helper."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str) -> str:
    """Return the path of a real program, or skip (fail in CI, SLAKIT_REQUIRE_REAL=1)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian package; .ci/run installs it)"
        if os.environ.get("SLAKIT_REQUIRE_REAL") == "1":
            pytest.fail(f"SLAKIT_REQUIRE_REAL=1 but {reason}")
        pytest.skip(reason)
    return path


class Endpoint:
    """An HTTP server on 127.0.0.1 answering with scripted (status, delay, headers)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, float, dict]] = []
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                endpoint.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(body or b"null"),
                    }
                )
                status, delay, headers = endpoint.script.pop(0) if endpoint.script else (200, 0, {})
                if delay:
                    endpoint.release.wait(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

"""Debian's headless Chromium, driven over the DevTools protocol (no browser download)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import tempfile
import time
import urllib.request
from itertools import count
from typing import TYPE_CHECKING, Any, Self

from websockets.sync.client import connect

if TYPE_CHECKING:
    from pathlib import Path

FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine has no network: don't try
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,1600",
)


class Browser:
    """One Chromium process with one page; ``with Browser(path) as b: b.open(url)``."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.TemporaryDirectory()
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._ids = count(1)
        self._stack = contextlib.ExitStack()
        self._ws: Any = None

    def __enter__(self) -> Self:
        try:
            port = self._devtools_port()
            listing = urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read()
            page = next(p for p in json.loads(listing) if p["type"] == "page")
            url = page["webSocketDebuggerUrl"]
            self._ws = self._stack.enter_context(connect(url, max_size=2**26))
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.__exit__()  # never leave a browser behind
            raise
        return self

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + 30  # a watchdog, not a timing
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
            if not line and self._proc.poll() is not None:
                break
        msg = "chromium did not start its DevTools endpoint"
        raise RuntimeError(msg)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events in between are skipped)."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.call("Page.navigate", url=url)
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("method") == "Page.loadEventFired":
                return

    def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page and return its (JSON-able) value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        self._profile.cleanup()

"""
Notifiers: tell people (and Alertmanager, PagerDuty, Slack) about violations.

Every notifier is a hook: ``on_event`` turns :class:`~slakit.events.ViolationOpened`,
:class:`~slakit.events.ViolationAcknowledged` and :class:`~slakit.events.ViolationResolved`
into a :class:`Message` and sends it; other events are ignored. A failed send raises
:class:`NotifyError` (the engine records it on the violation and retries).

HTTP notifiers share one careful sender: a timeout (default 5 s), bounded retries with
exponential backoff on connection errors and 5xx answers (never on 4xx), redirects
refused, and hosts that resolve to link-local or cloud metadata addresses
(169.254.0.0/16, fe80::/10) refused unless ``allow_link_local=True``. URLs, routing
keys and passwords never appear in errors, logs or ``repr``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import smtplib
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from slakit.events import Violation, ViolationAcknowledged, ViolationOpened, ViolationResolved
from slakit.exceptions import SlakitError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from slakit.events import Event

_log = logging.getLogger("slakit.notify")

_LINK_LOCAL: Final = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)


class NotifyError(SlakitError):
    """A notification could not be delivered (the message never names the secret URL)."""


@attrs.frozen
class Message:
    """What a notifier says about one violation event."""

    status: str
    """``firing``, ``acknowledged`` or ``resolved``."""
    violation: Violation
    service: str

    @property
    def title(self) -> str:
        """One line: ``[CRITICAL] checkout/availability page-1h-5m firing``."""
        v = self.violation
        return f"[{v.severity.upper()}] {v.slo}/{v.objective} {v.rule} {self.status}"

    @property
    def text(self) -> str:
        """A few lines a person can act on."""
        v = self.violation
        lines = [self.title, v.detail, f"opened {_iso(v.opened_at)}"]
        if v.acknowledged_at is not None:
            lines.append(f"acknowledged {_iso(v.acknowledged_at)} by {v.acknowledged_by or '?'}")
        if v.resolved_at is not None:
            lines.append(f"resolved {_iso(v.resolved_at)} after {v.duration or 0:.0f}s")
        lines.append(f"violation id {v.id}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Return the generic JSON payload."""
        v = self.violation
        return {
            "status": self.status,
            "service": self.service,
            "title": self.title,
            "text": self.text,
            "violation": {
                "id": v.id,
                "slo": v.slo,
                "objective": v.objective,
                "rule": v.rule,
                "severity": str(v.severity),
                "opened_at": _iso(v.opened_at),
                "acknowledged_at": None if v.acknowledged_at is None else _iso(v.acknowledged_at),
                "resolved_at": None if v.resolved_at is None else _iso(v.resolved_at),
                "actual": v.actual,
                "limit": v.limit,
                "detail": v.detail,
            },
        }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


_STATUS: Final = {
    ViolationOpened: "firing",
    ViolationAcknowledged: "acknowledged",
    ViolationResolved: "resolved",
}


class Notifier:
    """Base class: turns violation events into messages and sends them."""

    name: str = "notifier"
    service: str = "service"
    statuses: ClassVar[frozenset[str]] = frozenset({"firing", "acknowledged", "resolved"})

    def on_event(self, event: Event) -> None:
        """Send a message for a violation event this notifier cares about."""
        status = _STATUS.get(type(event))
        if status is None or status not in self.statuses:
            return
        violation: Violation = event.violation  # type: ignore[union-attr]
        self.send(Message(status, violation, self.service))

    def send(self, message: Message) -> None:
        """Deliver ``message``; raise :class:`NotifyError` on failure."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LogNotifier(Notifier):
    """Writes messages to a logger (``slakit.notify`` by default)."""

    def __init__(
        self, name: str = "log", *, logger: logging.Logger | None = None, service: str = "service"
    ) -> None:
        self.name = name
        self.service = service
        self._logger = logger or _log

    def send(self, message: Message) -> None:
        """Log the message at WARNING (firing) or INFO."""
        level = logging.WARNING if message.status == "firing" else logging.INFO
        self._logger.log(level, "%s", message.text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: ARG002
        return None  # never follow: urllib then raises HTTPError with the 3xx code


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


@attrs.frozen
class HttpSettings:
    """How an HTTP notifier talks to its endpoint."""

    timeout: float = 5.0
    retries: int = 2
    """Retries after the first attempt, on connection errors and 5xx only."""
    backoff: float = 0.5
    """Seconds before the first retry; doubles each time."""
    allow_link_local: bool = False


class HttpSender:
    """
    POSTs JSON carefully: timeout, retries with backoff on 5xx, no redirects, no link-local.

    Errors name ``kind`` and ``name``, never the URL.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{kind} {name!r}: url must be http(s)://host/...")
        self.kind, self.name = kind, name
        self._url = url
        self._host = parsed.hostname
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self.settings = settings or HttpSettings()
        self._sleep = threading.Event().wait  # interruptible between retries

    def post(self, payload: Any) -> None:
        """POST ``payload`` as JSON; raise :class:`NotifyError` when it cannot be delivered."""
        self._check_address()
        body = json.dumps(payload).encode()
        delay = self.settings.backoff
        last = ""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._sleep(delay)
                delay *= 2
            request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self._url, data=body, headers=self._headers, method="POST"
            )
            try:
                with _OPENER.open(request, timeout=self.settings.timeout) as response:
                    response.read()
                    return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500:  # the request is wrong, a retry will not help
                    break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                last = type(reason).__name__ if isinstance(reason, BaseException) else "error"
        raise NotifyError(f"{self.kind} {self.name!r}: delivery failed ({last})")

    def _check_address(self) -> None:
        if self.settings.allow_link_local:
            return
        try:
            infos = socket.getaddrinfo(self._host, None)
        except OSError:
            raise NotifyError(f"{self.kind} {self.name!r}: host not found") from None
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if any(address in net for net in _LINK_LOCAL):
                raise NotifyError(
                    f"{self.kind} {self.name!r}: refusing a link-local address "
                    "(cloud metadata); set allow_link_local=True to permit it"
                )


class HttpNotifier(Notifier):
    """Base for notifiers that POST JSON; subclasses shape the payload."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
        service: str = "service",
    ) -> None:
        self.name = name
        self.service = service
        self.sender = HttpSender(type(self).__name__, name, url, headers=headers, settings=settings)

    def payload(self, message: Message) -> Any:
        """Return the JSON body for ``message``."""
        return message.as_dict()

    def send(self, message: Message) -> None:
        """POST the payload through the careful sender."""
        self.sender.post(self.payload(message))


class WebhookNotifier(HttpNotifier):
    """POSTs the generic JSON payload (:meth:`Message.as_dict`)."""


class SlackNotifier(HttpNotifier):
    """POSTs a Slack incoming-webhook message (``text`` plus a coloured attachment)."""

    _COLOURS: ClassVar[dict[str, str]] = {
        "firing": "#d62728",
        "acknowledged": "#ff7f0e",
        "resolved": "#2ca02c",
    }

    def payload(self, message: Message) -> Any:
        """Return a Slack-shaped body."""
        return {
            "text": message.title,
            "attachments": [
                {"color": self._COLOURS[message.status], "text": message.text, "mrkdwn_in": []}
            ],
        }


class PagerDutyNotifier(HttpNotifier):
    """Sends PagerDuty Events API v2 events: trigger, acknowledge, resolve (dedup by id)."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        *,
        url: str = "https://events.pagerduty.com/v2/enqueue",
        settings: HttpSettings | None = None,
        service: str = "service",
    ) -> None:
        super().__init__(name, url, settings=settings, service=service)
        self._routing_key = routing_key

    def payload(self, message: Message) -> Any:
        """Return an Events API v2 body."""
        v = message.violation
        action = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action[message.status],
            "dedup_key": v.id,
        }
        if message.status == "firing":
            body["payload"] = {
                "summary": message.title,
                "source": message.service,
                "severity": {"critical": "critical", "warning": "warning"}.get(v.severity, "info"),
                "timestamp": _iso(v.opened_at),
                "custom_details": message.as_dict()["violation"],
            }
        return body


class AlertmanagerNotifier(HttpNotifier):
    """
    Posts alerts to Alertmanager's ``/api/v2/alerts``; a resolve sets ``endsAt``.

    Args:
        url: Alertmanager's base URL, e.g. ``http://alertmanager:9093``.

    """

    statuses: ClassVar[frozenset[str]] = frozenset({"firing", "resolved"})

    def __init__(
        self,
        name: str,
        url: str,
        *,
        labels: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
        service: str = "service",
    ) -> None:
        super().__init__(
            name, url.rstrip("/") + "/api/v2/alerts", settings=settings, service=service
        )
        self._labels = dict(labels or {})

    def payload(self, message: Message) -> Any:
        """Return a one-alert list in Alertmanager's v2 format."""
        v = message.violation
        alert: dict[str, Any] = {
            "labels": {
                "alertname": "SLOViolation",
                "service": message.service,
                "slo": v.slo,
                "objective": v.objective,
                "rule": v.rule,
                "severity": str(v.severity),
                **self._labels,
            },
            "annotations": {"summary": message.title, "description": v.detail},
            "startsAt": _iso(v.opened_at),
        }
        if message.status == "resolved" and v.resolved_at is not None:
            alert["endsAt"] = _iso(v.resolved_at)
        return [alert]


class EmailNotifier(Notifier):
    """Sends a plain-text email through SMTP (optionally STARTTLS and login)."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: Sequence[str],
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 5.0,
        service: str = "service",
    ) -> None:
        if not to:
            raise ValueError(f"EmailNotifier {name!r}: needs at least one recipient")
        self.name = name
        self.service = service
        self._host, self._port = host, port
        self._sender, self._to = sender, list(to)
        self._username, self._password = username, password
        self._starttls = starttls
        self._timeout = timeout

    def send(self, message: Message) -> None:
        """Send the message as an email."""
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._to)
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(
                f"EmailNotifier {self.name!r}: delivery failed ({type(exc).__name__})"
            ) from None

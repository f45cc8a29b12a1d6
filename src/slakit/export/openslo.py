"""
OpenSLO v1: export slakit SLOs as ``kind: SLO`` documents, and import them back.

Each slakit objective becomes one OpenSLO ``SLO`` with an inline ``indicator`` (SLI);
``metadata.labels`` name the slakit SLO and objective, so importing the documents of
one SLO gives an equal SLO back. The mapping:

=====================  =================  =============================================
slakit                 budgetingMethod    indicator / objective
=====================  =================  =============================================
``Availability``       Occurrences        ``ratioMetric`` good/total; ``target``
``Latency``            Occurrences        ``thresholdMetric``; ``op: lte``, ``value`` (s)
``Uptime``             Timeslices         ``ratioMetric``; ``timeSliceTarget`` = 1 − max
                                          error ratio, ``timeSliceWindow`` = slice
``Percentile`` + slice Timeslices         ``thresholdMetric`` (a quantile query);
                                          ``op: lte``, ``value``; quantile in annotation
=====================  =================  =============================================

``Throughput``, ``Threshold`` and a ``Percentile`` over the whole window have no OpenSLO
form and are reported as unsupported on export; on import, fields slakit does not use
(``alertPolicies``, ``indicatorRef``, ``RatioTimeslices``, several objectives per
document, …) are reported with their path. Threshold values are seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from slakit.exceptions import FieldError
from slakit.spec import (
    SLO,
    Availability,
    Latency,
    Objective,
    Percentile,
    Uptime,
    Window,
    format_duration,
    parse_duration,
)

API = "openslo/v1"
_SLO_LABEL = "slakit.dev/slo"
_OBJECTIVE_LABEL = "slakit.dev/objective"
_QUANTILE = "slakit.dev/quantile"
_MONTH = {"day": "1d", "week": "1w", "month": "1M"}


@attrs.frozen
class Imported:
    """What :func:`import_documents` produced, and what it could not use."""

    slos: tuple[SLO, ...]
    problems: tuple[FieldError, ...]


def export_slo(slo: SLO, service: str = "service") -> tuple[list[dict[str, Any]], list[str]]:
    """Return ``(documents, unsupported)``: one OpenSLO SLO per exportable objective."""
    docs, skipped = [], []
    for o in slo.objectives:
        spec = _objective_spec(slo, o)
        if spec is None:
            skipped.append(f"{slo.name}/{o.key}: {type(o).__name__} has no OpenSLO form")
            continue
        indicator, budgeting, objective, annotations = spec
        name = _dns(f"{slo.name}-{o.key}")
        doc: dict[str, Any] = {
            "apiVersion": API,
            "kind": "SLO",
            "metadata": {
                "name": name,
                "displayName": f"{slo.name} {o.key}",
                "labels": {_SLO_LABEL: slo.name, _OBJECTIVE_LABEL: o.key},
            },
            "spec": {
                "description": slo.description or f"{slo.name}: {o.key}",
                "service": service,
                "indicator": {"metadata": {"name": f"{name}-sli"}, "spec": indicator},
                "timeWindow": [_window(slo.window)],
                "budgetingMethod": budgeting,
                "objectives": [{"displayName": o.key, **objective}],
            },
        }
        if annotations:
            doc["metadata"]["annotations"] = annotations
        docs.append(doc)
    return docs, skipped


def _objective_spec(
    slo: SLO, o: Objective
) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, str]] | None:
    sel = f'slo="{slo.name}"'
    total = f"sum(rate(slakit_requests_total{{{sel}}}[1m]))"
    good = f"{total} - sum(rate(slakit_errors_total{{{sel}}}[1m]))"
    if isinstance(o, Availability):
        return (
            _ratio(good, total),
            "Occurrences",
            {"target": o.target},
            {},
        )
    if isinstance(o, Latency):
        query = f"slakit_request_duration_seconds_bucket{{{sel}}}"
        return (
            {"thresholdMetric": _source(query)},
            "Occurrences",
            {"op": "lte", "value": o.threshold, "target": o.target},
            {},
        )
    if isinstance(o, Uptime):
        return (
            _ratio(good, total),
            "Timeslices",
            {
                "target": o.target,
                "timeSliceTarget": 1.0 - o.max_error_ratio,
                "timeSliceWindow": format_duration(o.slice),
            },
            {},
        )
    if isinstance(o, Percentile) and o.slice is not None and o.target is not None:
        query = (
            f"histogram_quantile({o.q!r}, sum by (le) "
            f"(rate(slakit_request_duration_seconds_bucket{{{sel}}}[1m])))"
        )
        return (
            {"thresholdMetric": _source(query)},
            "Timeslices",
            {
                "op": "lte",
                "value": o.threshold,
                "target": o.target,
                "timeSliceWindow": format_duration(o.slice),
            },
            {_QUANTILE: repr(o.q)},
        )
    return None


def _source(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def _ratio(good: str, total: str) -> dict[str, Any]:
    return {"ratioMetric": {"counter": False, "good": _source(good), "total": _source(total)}}


def _window(w: Window) -> dict[str, Any]:
    if w.length is not None:
        return {"duration": format_duration(w.length), "isRolling": True}
    return {
        "duration": _MONTH[w.unit or "month"],
        "isRolling": False,
        "calendar": {"startTime": "2020-01-01 00:00:00", "timeZone": w.tz},
    }


def _dns(name: str) -> str:
    """OpenSLO names follow DNS labels: lowercase letters, digits and ``-``, 63 at most."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63]


# -- import --------------------------------------------------------------------------

_KNOWN_SPEC = {
    "description",
    "service",
    "indicator",
    "timeWindow",
    "budgetingMethod",
    "objectives",
}


def import_documents(documents: Iterable[Any]) -> Imported:
    """
    Turn OpenSLO v1 ``SLO`` documents into slakit SLOs; report what cannot be used.

    Documents labelled with the same slakit SLO are merged back into one SLO; others
    become one SLO each, named after ``metadata.name``. Whatever the documents hold,
    nothing raises: a document of the wrong shape is skipped and reported by its path.
    """
    groups: dict[str, list[tuple[int, Objective, Window, str]]] = {}
    problems: list[FieldError] = []
    for i, doc in enumerate(documents):
        here = f"[{i}]"
        try:
            found = _import_document(doc, here, problems)
        except (ValueError, TypeError, KeyError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            problems.append(FieldError(here, f"{reason}; skipped"))
            continue
        if found is not None:
            slo_name, objective, window, description = found
            groups.setdefault(slo_name, []).append((i, objective, window, description))
    slos = []
    for name, parts in groups.items():
        windows = {w for _, _, w, _ in parts}
        if len(windows) > 1:
            problems.append(
                FieldError(
                    f"[{parts[0][0]}]", f"{name}: objectives with different windows; first kept"
                )
            )
        try:
            slos.append(
                SLO(
                    name,
                    objectives=[o for _, o, _, _ in parts],
                    window=parts[0][2],
                    description=_common_description(name, parts),
                )
            )
        except (ValueError, TypeError) as exc:
            problems.append(FieldError(f"[{parts[0][0]}]", f"{name}: {exc}"))
    return Imported(tuple(slos), tuple(problems))


def _import_document(
    doc: Any, here: str, problems: list[FieldError]
) -> tuple[str, Objective, Window, str] | None:
    """One document: ``(slo name, objective, window, description)``, or None if not an SLO."""
    if not isinstance(doc, Mapping) or doc.get("apiVersion") != API or doc.get("kind") != "SLO":
        problems.append(FieldError(here, f"not an {API} SLO document; skipped"))
        return None
    metadata = _mapping(doc.get("metadata"), f"{here}.metadata")
    spec = _mapping(doc.get("spec"), f"{here}.spec")
    problems.extend(
        FieldError(f"{here}.spec.{key}", "not supported by slakit; ignored")
        for key in sorted(map(str, set(spec) - _KNOWN_SPEC))
    )
    window = _import_window(spec.get("timeWindow"), f"{here}.spec.timeWindow")
    objective = _import_objective(metadata, spec, here, problems)
    labels = _mapping(metadata.get("labels"), f"{here}.metadata.labels")
    index = here.strip("[]")
    slo_name = str(labels.get(_SLO_LABEL) or metadata.get("name") or f"slo{index}")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise TypeError(f"{here}.spec.description: must be text")
    return slo_name, objective, window, description


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping, ``{}`` if absent; anything else is an error at ``path``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{path}: must be a mapping, got {type(value).__name__}")
    return value


def _common_description(name: str, parts: list[tuple[int, Objective, Window, str]]) -> str:
    texts = {d for _, _, _, d in parts}
    generated = {f"{name}: {o.key}" for _, o, _, _ in parts}
    if texts <= generated:  # only the descriptions export made up
        return ""
    return next(iter(texts - generated))


def _import_window(raw: Any, path: str) -> Window:
    if not isinstance(raw, list) or len(raw) != 1 or not isinstance(raw[0], Mapping):
        raise ValueError(f"{path}: needs exactly one time window")
    w = raw[0]
    duration = str(w.get("duration", ""))
    if w.get("isRolling", False):
        return Window(length=parse_duration(duration))
    unit = {"1d": "day", "1w": "week", "1M": "month", "1month": "month"}.get(duration)
    if unit is None:
        raise ValueError(f"{path}: calendar windows of {duration!r} are not supported")
    calendar = _mapping(w.get("calendar"), f"{path}[0].calendar")
    return Window(unit=unit, tz=str(calendar.get("timeZone", "UTC")))


def _import_objective(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], here: str, problems: list[FieldError]
) -> Objective:
    objectives = spec.get("objectives") or []
    if not isinstance(objectives, list) or not objectives:
        raise ValueError("no objectives")
    if len(objectives) > 1:
        problems.append(
            FieldError(
                f"{here}.spec.objectives",
                "slakit takes one objective per document; the first is used",
            )
        )
    first = _mapping(objectives[0], f"{here}.spec.objectives[0]")
    indicator = _mapping(spec.get("indicator"), f"{here}.spec.indicator")
    indicator = _mapping(indicator.get("spec"), f"{here}.spec.indicator.spec")
    budgeting = spec.get("budgetingMethod", "Occurrences")
    labels = _mapping(metadata.get("labels"), f"{here}.metadata.labels")
    name = labels.get(_OBJECTIVE_LABEL)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{here}.metadata.labels.{_OBJECTIVE_LABEL}: must be text")
    if "ratioMetric" in indicator:
        return _ratio_objective(first, budgeting, name)
    if "thresholdMetric" in indicator:
        annotations = _mapping(metadata.get("annotations"), f"{here}.metadata.annotations")
        return _threshold_objective(first, budgeting, name, annotations.get(_QUANTILE))
    raise ValueError(f"indicator {sorted(map(str, indicator))} is not supported")


def _ratio_objective(obj: Mapping[str, Any], budgeting: str, name: str | None) -> Objective:
    if budgeting == "Occurrences":
        return _named(Availability(obj["target"]), name, "availability")
    if budgeting == "Timeslices":
        ratio = round(1.0 - float(obj.get("timeSliceTarget", 0.99)), 12)
        slice_ = obj.get("timeSliceWindow", "1m")
        return _named(Uptime(obj["target"], slice=slice_, max_error_ratio=ratio), name, "uptime")
    raise ValueError(f"ratioMetric with {budgeting} budgeting is not supported")


def _threshold_objective(
    obj: Mapping[str, Any], budgeting: str, name: str | None, quantile: str | None
) -> Objective:
    if obj.get("op", "lte") not in ("lte", "lt"):
        raise ValueError(f"op {obj.get('op')!r}: slakit holds latency at or below a value")
    if budgeting == "Occurrences":
        return _named(Latency(obj["value"], obj["target"]), name, None)
    if budgeting == "Timeslices":
        if quantile is None:
            raise ValueError(f"a Timeslices threshold needs metadata.annotations.{_QUANTILE}")
        slice_ = obj.get("timeSliceWindow", "1m")
        p = Percentile(float(quantile), obj["value"], slice=slice_, target=obj["target"])
        return _named(p, name, None)
    raise ValueError(f"thresholdMetric with {budgeting} budgeting is not supported")


def _named(o: Objective, name: str | None, default: str | None) -> Objective:
    """Keep an exported objective's name when it differs from the one slakit derives."""
    if name is None or name == (default or o.key):
        return o
    return attrs.evolve(o, name=name)

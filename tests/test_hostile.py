"""
Hostile input, generated: every loader answers with its own error or its problem list.

The configuration loader (YAML, TOML, JSON text and plain dicts) raises ``ConfigError``
naming fields, the OpenSLO importer lists problems by document path, and neither ever
lets another exception out. ``fuzz/config_fuzz.py`` does the same with atheris, for
longer; these run in every test run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

import slakit
from slakit.export.openslo import export_slo, import_documents
from slakit.formula import Formula
from slakit.sla import PENALTY_VARIABLES

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds"
GOOD = yaml.safe_load((SEEDS / "good.yaml").read_text(encoding="utf-8")[1:])  # byte 0: the mode

# names the loaders know, so generated documents reach past the first level
words = st.sampled_from(
    [
        "service", "slos", "name", "window", "objectives", "availability", "latency",
        "target", "threshold", "alerting", "contracts", "weights", "credits", "penalty",
        "maintenance", "apiVersion", "kind", "metadata", "spec", "timeWindow", "indicator",
        "ratioMetric", "thresholdMetric", "budgetingMethod", "labels", "duration",
    ]
)  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | words
    | st.dates()  # what YAML makes of 2026-01-01
    | st.binary(max_size=8)  # and of !!binary
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(words | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def check_config(data: Any, fmt: str | None = None) -> None:
    """Load a dict (or text in ``fmt``): a Config, or a ConfigError whose errors name fields."""
    try:
        slakit.load_dict(data) if fmt is None else slakit.loads(data, fmt)
    except slakit.ConfigError as exc:
        errors = exc.errors
    else:
        return
    assert errors
    assert all(isinstance(e.path, str) and e.message for e in errors)


def mutate(doc: Any, draw: Any) -> Any:
    """Replace one randomly chosen node of ``doc`` (at any depth) with a generated value."""
    if isinstance(doc, dict) and doc and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc, key=str)))
        return {**doc, key: mutate(doc[key], draw)}
    if isinstance(doc, list) and doc and draw(st.booleans()):
        i = draw(st.integers(0, len(doc) - 1))
        return [*doc[:i], mutate(doc[i], draw), *doc[i + 1 :]]
    return draw(values)


@given(values)
def test_any_data_is_a_config_or_a_config_error(data: Any) -> None:
    check_config(data)


@given(st.data())
def test_a_good_config_with_any_part_replaced_is_a_config_or_a_config_error(data: Any) -> None:
    check_config(mutate(GOOD, data.draw))


@given(st.text(max_size=200), st.sampled_from(["yaml", "toml", "json"]))
def test_any_text_is_a_config_or_a_config_error(text: str, fmt: str) -> None:
    check_config(text, fmt)


def check_openslo(documents: list[Any]) -> None:
    result = import_documents(documents)
    assert all(p.path.startswith("[") and p.message for p in result.problems)
    assert all(isinstance(s, slakit.SLO) for s in result.slos)


DOCUMENTS = [doc for slo in slakit.load_dict(GOOD).slos for doc in export_slo(slo, "shop")[0]]


@given(st.lists(values, max_size=4))
def test_any_documents_import_or_list_their_problems(documents: list[Any]) -> None:
    check_openslo(documents)


@given(st.data())
def test_exported_documents_with_any_part_replaced_import_or_list_their_problems(
    data: Any,
) -> None:
    i = data.draw(st.integers(0, len(DOCUMENTS) - 1))
    check_openslo([*DOCUMENTS[:i], mutate(DOCUMENTS[i], data.draw), *DOCUMENTS[i + 1 :]])


def test_the_seeds_are_what_they_say() -> None:
    """The fuzzer's readable seeds load (a seed that fails to parse fuzzes little)."""
    for name, fmt in [("good.yaml", "yaml"), ("contracts.yaml", "yaml"), ("good.toml", "toml"),
                      ("good.json", "json")]:  # fmt: skip
        text = (SEEDS / name).read_text(encoding="utf-8")
        assert text[0] == fmt[0]
        assert slakit.loads(text[1:], fmt).slos
    openslo = (SEEDS / "openslo.json").read_text(encoding="utf-8")
    assert import_documents(json.loads(openslo[1:])).slos
    formula = (SEEDS / "formula.txt").read_text(encoding="utf-8")
    assert Formula.parse(formula[1:], PENALTY_VARIABLES)

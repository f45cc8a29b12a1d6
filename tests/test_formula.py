"""The formula evaluator: arithmetic right, everything else refused, nothing executed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slakit.formula import Formula, FormulaError

VARS = {"target", "actual", "monthly_fee"}


def test_the_documented_penalty() -> None:
    f = Formula.parse("10 * (target - actual) * monthly_fee", VARS)
    assert f(target=0.999, actual=0.997, monthly_fee=1_000) == pytest.approx(20.0)
    assert f.variables == frozenset(VARS)


def test_functions_and_unary_minus() -> None:
    f = Formula.parse("max(0, min(monthly_fee, -(actual - target) * 100)) + abs(-1)", VARS)
    assert f(target=0.99, actual=0.98, monthly_fee=0.5) == pytest.approx(1.5)


SENTINEL = Path("/tmp/slakit-formula-sentinel")  # a file that must never appear

HOSTILE = [
    ("__import__('os').system('touch /tmp/slakit-formula-sentinel')", "only min, max and abs"),
    ("().__class__.__bases__[0].__subclasses__()", "only min, max and abs"),
    ("(1).__class__", "Attribute is not allowed"),
    ("actual.real", "Attribute is not allowed"),
    ("(lambda: 1)()", "only min, max and abs"),
    ("lambda x: x", "Lambda is not allowed"),
    ("2 ** 10 ** 10", "operator Pow is not allowed"),
    ("9" * 400, "too large"),
    ("1e400", "too large"),
    ("abs(" * 40 + "1" + ")" * 40, "nested too deeply"),
    ("-" * 60 + "1", "nested too deeply"),
    ("-" * 400 + "1", "too large"),
    ("(" * 240 + "1" + ")" * 240, "not an arithmetic expression"),
    ("1 +" * 150 + " 1", "too large"),
    ("[1, 2][0]", "not allowed"),
    ("'text'", "only numbers"),
    ("True", "only numbers"),
    ("open('/etc/passwd')", "only min, max and abs"),
    ("min(*[1, 2])", "plain arguments only"),
    ("max(a=1)", "plain arguments only"),
    ("abs(1, 2)", "needs 1 argument"),
    ("min()", "at least one"),
    ("secret_variable * 2", "unknown variable 'secret_variable'"),
    ("1 if actual else 2", "IfExp is not allowed"),
    ("actual < target", "Compare is not allowed"),
    ("actual // 2", "operator FloorDiv is not allowed"),
    ("actual % 2", "operator Mod is not allowed"),
    ("x := 1", "not an arithmetic expression"),
    ("1; import os", "not an arithmetic expression"),
    ("f'{actual}'", "JoinedStr is not allowed"),
    ("x" * 600, "at most 500 characters"),
    ("", "not an arithmetic expression"),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_hostile_inputs_are_refused_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(FormulaError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Formula.parse(source, VARS)
    assert not SENTINEL.exists()


def test_evaluation_errors_are_formula_errors() -> None:
    with pytest.raises(FormulaError, match="division by zero"):
        Formula.parse("monthly_fee / (target - actual)", VARS)(target=1, actual=1, monthly_fee=10)
    with pytest.raises(FormulaError, match="no value for monthly_fee"):
        Formula.parse("monthly_fee * 2", VARS)(target=1, actual=1)
    with pytest.raises(FormulaError, match="finite"):
        Formula.parse("monthly_fee * 1e15 * 1e15 * 1e15 * 1e15 * 1e15", VARS)(
            target=1, actual=1, monthly_fee=1e300
        )


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_cleanly(source: str) -> None:
    try:
        f = Formula.parse(source, VARS)
    except FormulaError:
        return
    try:
        value = f(target=0.999, actual=0.99, monthly_fee=100.0)
    except FormulaError:
        return
    assert math.isfinite(value)


numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, float]:
    """An expression and its value, computed independently of the evaluator."""
    env = {"target": 0.999, "actual": 0.99, "monthly_fee": 100.0}
    if depth > 4 or draw(st.booleans()):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(env)))
            return name, env[name]
        n = draw(numbers)
        return repr(n), n
    kind = draw(st.sampled_from(["+", "-", "*", "neg", "min", "max", "abs"]))
    a_src, a = draw(expressions(depth + 1))
    if kind == "neg":
        return f"-({a_src})", -a
    if kind == "abs":
        return f"abs({a_src})", abs(a)
    b_src, b = draw(expressions(depth + 1))
    if kind == "min":
        return f"min({a_src}, {b_src})", min(a, b)
    if kind == "max":
        return f"max({a_src}, {b_src})", max(a, b)
    ops = {"+": a + b, "-": a - b, "*": a * b}
    return f"({a_src}) {kind} ({b_src})", ops[kind]


@given(expressions())
def test_arithmetic_matches_an_independent_computation(case: tuple[str, float]) -> None:
    source, expected = case
    got = Formula.parse(source, VARS)(target=0.999, actual=0.99, monthly_fee=100.0)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)

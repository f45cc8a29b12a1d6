"""
Safe arithmetic for penalty and credit formulas written in configuration.

``Formula.parse("10 * (target - actual) * monthly_fee", {"target", "actual", "monthly_fee"})``
accepts numbers, the declared variables, ``+ - * /``, unary minus, parentheses and
calls of ``min``, ``max`` and ``abs``; nothing else. The text is parsed with :mod:`ast`
and checked node by node against that list, then turned into a tree of closures:
nothing is ever passed to ``eval`` or ``exec``, so there is no name, attribute, call or
import to reach. Size is bounded (characters, nodes, depth, literal magnitude) and there
is no power operator, so a formula cannot take long or build a huge number. Every
rejection is a :class:`FormulaError` that says what and where (column).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from slakit.exceptions import SlakitError

MAX_CHARS: Final = 500
MAX_NODES: Final = 200
MAX_DEPTH: Final = 32
MAX_LITERAL: Final = 1e15
FUNCTIONS: Final[Mapping[str, Callable[..., float]]] = {"min": min, "max": max, "abs": abs}

_BINARY: Final[Mapping[type[ast.operator], Callable[[float, float], float]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}

Node = Callable[[Mapping[str, float]], float]


class FormulaError(SlakitError, ValueError):
    """A formula was rejected when parsed, or could not be evaluated (division by zero)."""


class Formula:
    """
    A checked arithmetic formula over declared variables.

    Make one with :meth:`parse`; call it with every variable as a keyword argument.
    """

    __slots__ = ("_root", "source", "variables")

    def __init__(self, source: str, variables: frozenset[str], root: Node) -> None:
        self.source = source
        self.variables = variables
        self._root = root

    @classmethod
    def parse(cls, source: str, variables: Iterable[str]) -> Formula:
        """
        Check ``source`` and return a formula over ``variables``.

        Raises:
            FormulaError: anything beyond numbers, the variables, ``+ - * /``,
                parentheses and ``min``/``max``/``abs``, or a formula too large.

        """
        if not isinstance(source, str):
            raise FormulaError(f"a formula must be text, got {type(source).__name__}")
        if len(source) > MAX_CHARS:
            raise FormulaError(f"a formula may have at most {MAX_CHARS} characters")
        declared = frozenset(variables)
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            where = f" at column {exc.offset}" if exc.offset else ""
            raise FormulaError(f"not an arithmetic expression{where}: {exc.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise FormulaError("the formula is nested too deeply") from None
        count = sum(1 for _ in ast.walk(tree))
        if count > MAX_NODES:
            raise FormulaError(f"the formula is too large ({count} parts, at most {MAX_NODES})")
        return cls(source, declared, _build(tree.body, declared, 0))

    def __call__(self, **values: float) -> float:
        """
        Evaluate with a value for every declared variable.

        Raises:
            FormulaError: a variable is missing, a division by zero, or a result that
                is not a finite number.

        """
        missing = self.variables - values.keys()
        if missing:
            raise FormulaError(f"no value for {', '.join(sorted(missing))} in {self.source!r}")
        try:
            result = self._root(values)
        except ZeroDivisionError:
            raise FormulaError(f"division by zero in {self.source!r}") from None
        except OverflowError:
            raise FormulaError(f"{self.source!r} overflowed") from None
        if not math.isfinite(result):
            raise FormulaError(f"{self.source!r} did not give a finite number")
        return float(result)

    def __repr__(self) -> str:
        return f"Formula({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Formula) and (self.source, self.variables) == (
            other.source,
            other.variables,
        )

    def __hash__(self) -> int:
        return hash((self.source, self.variables))


def _where(node: ast.AST) -> str:
    return f" at column {getattr(node, 'col_offset', 0) + 1}"


def _build(node: ast.expr, declared: frozenset[str], depth: int) -> Node:  # noqa: C901 - one case per allowed node
    if depth > MAX_DEPTH:
        raise FormulaError(f"the formula is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FormulaError(f"only numbers are allowed, not {value!r}{_where(node)}")
        if abs(value) > MAX_LITERAL or not math.isfinite(value):
            raise FormulaError(f"the number {value!r} is too large{_where(node)}")
        number = float(value)
        return lambda _: number
    if isinstance(node, ast.Name):
        name = node.id
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise FormulaError(f"unknown variable {name!r}{_where(node)} (declared: {known})")
        return lambda values: float(values[name])
    if isinstance(node, ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            symbol = type(node.op).__name__
            raise FormulaError(f"operator {symbol} is not allowed{_where(node)}; use + - * /")
        left = _build(node.left, declared, depth + 1)
        right = _build(node.right, declared, depth + 1)
        return lambda values: op(left(values), right(values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _build(node.operand, declared, depth + 1)
        if isinstance(node.op, ast.USub):
            return lambda values: -inner(values)
        return inner
    if isinstance(node, ast.Call):
        return _call(node, declared, depth)
    kind = type(node).__name__
    raise FormulaError(f"{kind} is not allowed in a formula{_where(node)}")


def _call(node: ast.Call, declared: frozenset[str], depth: int) -> Node:
    func = node.func
    if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
        raise FormulaError(f"only min, max and abs may be called{_where(node)}")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise FormulaError(f"{func.id}() takes plain arguments only{_where(node)}")
    want = 1 if func.id == "abs" else None
    if (want is not None and len(node.args) != want) or not node.args:
        raise FormulaError(f"{func.id}() needs {want or 'at least one'} argument(s){_where(node)}")
    fn = FUNCTIONS[func.id]
    args = [_build(a, declared, depth + 1) for a in node.args]
    if len(args) == 1 and func.id != "abs":
        return args[0]
    return lambda values: float(fn(*(a(values) for a in args)))

"""
Fuzz the configuration loader, the OpenSLO importer and the formula evaluator with atheris.

    python fuzz/config_fuzz.py CORPUS fuzz/seeds -atheris_runs=30000   # CI's short run
    python fuzz/config_fuzz.py CORPUS fuzz/seeds -max_total_time=3600  # the documented hour

An input's first byte picks the target (``y`` YAML, ``t`` TOML, ``j`` JSON, ``f`` a
penalty formula, ``o`` OpenSLO documents as JSON; any other byte by its value modulo 5)
and the rest, as UTF-8, is the text, so a seed is a readable file (``fuzz/seeds``).
Every input must load, or fail with the library's own error type (``ConfigError`` for
configurations, ``FormulaError`` for formulas), or (OpenSLO) import with its problems
listed by path: any other exception, a hang (``-timeout``) or a memory blow-up
(``-rss_limit_mb``) is a finding.
"""

from __future__ import annotations

import contextlib
import json
import sys

import atheris

with atheris.instrument_imports():
    import slakit
    from slakit.export.openslo import import_documents
    from slakit.formula import Formula, FormulaError

VARIABLES = {"target", "actual", "monthly_fee", "credit_percent"}
MODES = b"ytjfo"


def formula(text: str) -> None:
    try:
        parsed = Formula.parse(text, VARIABLES)
    except FormulaError:
        return
    with contextlib.suppress(FormulaError):
        parsed(target=0.999, actual=0.99, monthly_fee=100.0, credit_percent=10.0)


def openslo(text: str) -> None:
    try:  # the importer takes parsed documents: what JSON cannot parse is not its input
        data = json.loads(text)
    except (ValueError, RecursionError):
        return
    result = import_documents(data if isinstance(data, list) else [data])
    for problem in result.problems:
        assert problem.path.startswith("["), problem


def one(data: bytes) -> None:
    if not data:
        return
    mode = MODES.find(data[:1])
    mode = data[0] % len(MODES) if mode < 0 else mode
    text = data[1:].decode("utf-8", errors="replace")
    if mode == 3:
        formula(text)
    elif mode == 4:
        openslo(text)
    else:
        with contextlib.suppress(slakit.ConfigError):
            slakit.loads(text, ("yaml", "toml", "json")[mode])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()

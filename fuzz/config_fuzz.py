"""
Fuzz the configuration loader and the formula evaluator with atheris.

    python fuzz/config_fuzz.py -atheris_runs=20000      # CI's short run
    python fuzz/config_fuzz.py -max_total_time=3600      # the documented hour

Every input must either load or fail with the library's own error type (``ConfigError``
for configurations, ``FormulaError`` for formulas): any other exception, a hang
(``-timeout``) or a memory blow-up (``-rss_limit_mb``) is a finding.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    import slakit
    from slakit.formula import Formula, FormulaError

VARIABLES = {"target", "actual", "monthly_fee", "credit_percent"}


def one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    text = fdp.ConsumeUnicodeNoSurrogates(4_096)
    if mode == 3:
        try:
            formula = Formula.parse(text, VARIABLES)
        except FormulaError:
            return
        with contextlib.suppress(FormulaError):
            formula(target=0.999, actual=0.99, monthly_fee=100.0, credit_percent=10.0)
        return
    with contextlib.suppress(slakit.ConfigError):
        slakit.loads(text, ("yaml", "toml", "json")[mode])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()

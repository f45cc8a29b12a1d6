"""
The ``slakit`` command line.

``slakit validate FILE`` checks a configuration and prints every error with its path
(exit code 1 when invalid, 2 on usage errors).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from slakit.config import load
from slakit.exceptions import ConfigError
from slakit.remediate.build import build

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = argparse.ArgumentParser(prog="slakit", description=__doc__.splitlines()[1])
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check an SLO configuration file")
    validate.add_argument("path", help="a .yaml, .toml or .json file")
    args = parser.parse_args(argv)
    if args.command == "validate":
        try:
            cfg = load(args.path)
            build(cfg)  # constructs every hook and resolves every reference; starts nothing
        except ConfigError as exc:
            for err in exc.errors:
                print(f"{args.path}: {err}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{args.path}: {exc.strerror}", file=sys.stderr)
            return 1
        names = ", ".join(s.name for s in cfg.slos)
        print(f"{args.path}: ok ({len(cfg.slos)} SLOs: {names})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

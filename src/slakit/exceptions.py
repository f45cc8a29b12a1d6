"""Error types. Configuration errors carry the path of every offending field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence


class SlakitError(Exception):
    """Base class of every error slakit raises on purpose."""


class RejectedError(SlakitError):
    """
    A call was refused before it ran (an open breaker, a shed request).

    Recorded as a separate ``rejected`` outcome; middleware answers it with 503 and
    ``Retry-After``.
    """

    retry_after: float | None = None


@attrs.frozen
class FieldError:
    """One invalid field: where it is and what is wrong with it."""

    path: str
    """Dotted path from the root of the configuration, e.g. ``slos[0].objectives[1].target``."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SlakitError, ValueError):
    """
    A configuration is invalid. ``errors`` lists every problem found, not only the first.

    ``str()`` gives one line per error, each starting with the field's path.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

"""Exceptions and warnings raised by gtools."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One problem found in an input table.

    ``check`` is the identifier of the check in ``data_schemas/`` (e.g.
    ``"duplicate_id_time"``), ``column`` the column it concerns, ``n_rows`` how
    many rows are affected and ``examples`` the first few offending
    ``(id, time)`` pairs or ids.
    """

    check: str
    column: str | None
    message: str
    n_rows: int = 0
    examples: list = field(default_factory=list)

    def __str__(self) -> str:
        col = f"[{self.column}] " if self.column else ""
        return f"{self.check}: {col}{self.message}"


class DataError(ValueError):
    """Bad input data: names the column, the number of bad rows and examples.

    ``problems`` holds every :class:`Problem` found, so a single error reports
    all that is wrong with a table at once.
    """

    def __init__(self, message: str | list[Problem], problems: list[Problem] | None = None):
        if isinstance(message, list):
            problems = message
            head = f"{len(problems)} problem(s) found in the input data:"
            message = "\n".join([head] + [f"  - {p}" for p in problems])
        self.problems: list[Problem] = list(problems or [])
        super().__init__(message)


class FitWarning(UserWarning):
    """Statistical trouble: positivity, extreme weights, non-convergence, separation."""


class IdentificationError(ValueError):
    """The declared causal DAG says the requested effect is not identified."""

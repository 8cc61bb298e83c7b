"""Exceptions and warnings raised by bayescrt."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """The data cannot be used as given.

    Every problem found is collected and raised together; ``problems`` holds
    them as a list of sentences, each naming the column, the bad value and
    the fix.
    """

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        if len(self.problems) == 1:
            msg = self.problems[0]
        else:
            msg = f"{len(self.problems)} problems with the data:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(msg)


class SpecError(ValueError):
    """An argument, prior or option is not valid; the message lists the valid choices."""


class ResultFileError(OSError):
    """A saved result file is missing, truncated, altered or not a bayescrt result."""


class DataWarning(UserWarning):
    """The data can be fitted, but something in it limits what the fit can say."""


class DiagnosticsWarning(UserWarning):
    """A fit failed at least one convergence gate: its numbers cannot be trusted."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""

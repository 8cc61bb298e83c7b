"""One progress bar (rich) for long work: the cells of a grid, the draws of a fit's chains."""

from __future__ import annotations


class Bar:
    """A bar ``label [====    ] done/total unit elapsed``, or nothing when ``enabled`` is false.

    ``set`` and ``advance`` may be called from other threads (rich's progress holds a lock).
    """

    def __init__(self, label: str, unit: str, total: int, completed: int = 0, enabled: bool = True):
        self.label, self.unit, self.total, self.completed, self.enabled = label, unit, total, completed, enabled

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
                               TimeElapsedColumn())
            self._p.start()
            self._task = self._p.add_task(self.unit, total=self.total, completed=self.completed)
        return self

    def advance(self, n=1):
        if self.enabled:
            self._p.advance(self._task, n)

    def set(self, completed):
        if self.enabled:
            self._p.update(self._task, completed=completed)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.stop()

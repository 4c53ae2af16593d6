"""Errors a user can act on. The CLI turns them into a message and exit code 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where it is and what was expected."""

    file: str
    record: str  # e.g. "annotation id=17", "image id=3", "categories[4]"
    field: str  # e.g. "bbox", "segmentation", "file_name"
    message: str  # what was expected / what is wrong

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.field}: {self.message}"


class InputError(ValueError):
    """Bad input, with every problem found (not just the first)."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) found:\n{shown}{more}")

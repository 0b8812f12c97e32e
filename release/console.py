"""Human output for the invoke tasks: progress on stderr (rich, only on a terminal) and one
summary line per phase on stdout."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.status import Status

from release.context import Progress


class ConsoleProgress(Progress):
    """A spinner with the current step and the last Terraform line; silent when stderr is not a
    terminal (CI logs get the summary lines only)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.enabled = sys.stderr.isatty()
        self._status: Status | None = None
        self._step = ""

    def __enter__(self) -> ConsoleProgress:
        if self.enabled:
            self._status = self.console.status("starting")
            self._status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.stop()

    def _show(self, detail: str = "") -> None:
        if self._status is not None:
            self._status.update(f"{self._step} [dim]{detail}[/dim]" if detail else self._step)

    def status(self, text: str) -> None:
        self._step = text
        self._show()

    def note(self, text: str) -> None:
        # Above the spinner when there is one; never wrapped, so a log keeps it as one line.
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def terraform_line(self, line: str) -> None:
        if line.strip():
            self._show(line.strip()[:100])

    def smoke_progress(self, done: int, total: int) -> None:
        self._show(f"{done}/{total} requests")

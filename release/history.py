"""The release history: one JSON line per release phase in `<project>/.release/history.jsonl`.

Append-only, so an interrupted run never loses earlier records, and two processes can append at
once: each record is one `write()` on an O_APPEND descriptor, under an exclusive flock.
Reading skips (and logs) a damaged line instead of failing, so `invoke status` keeps working.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from release.config import release_state_dir
from release.kinds import Outcome, Phase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseRecord:
    """One release phase as it happened (build `time`/`caller` with release.lock's helpers)."""

    time: str  # ISO 8601 UTC, e.g. release.lock.utc_timestamp()
    environment: str
    caller: str  # user@host, e.g. release.lock.current_caller()
    phase: Phase
    # {"primary_version": "7", "additional_version_weights": {"8": 0.1}}
    routing_before: Mapping[str, Any]
    routing_after: Mapping[str, Any]
    candidate_version: str
    stable_version: str
    smoke: Mapping[str, Any] | None
    alarms: Mapping[str, str] | None  # alarm name -> state (OK, ALARM, INSUFFICIENT_DATA)
    outcome: Outcome
    detail: str
    duration_seconds: float
    # The promotion gate: its decision, who approved, or why it was skipped (release/gate.py);
    # None for phases without a gate, and in records written before it existed.
    gate: Mapping[str, Any] | None = None
    # The config pins of the phase's versions (candidate, stable, those the alias serves after
    # it), read from AWS when the record is written: version -> {"settings_version": "2" or None
    # (pins none), "secrets": {secret: version id}}, or {"error": why it could not be read}
    # (release.released_config.config_pins). None in records written before it existed.
    config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # A name outside the enums is a bug in the caller, not a user's mistake: ValueError.
        if self.phase not in tuple(Phase):
            raise ValueError(f"phase {self.phase!r} must be one of {', '.join(Phase)}")
        if self.outcome not in tuple(Outcome):
            raise ValueError(f"outcome {self.outcome!r} must be one of {', '.join(Outcome)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReleaseHistory:
    """The history file; `path` defaults to `<project>/.release/history.jsonl`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or release_state_dir() / "history.jsonl")

    def append(self, record: Mapping[str, Any] | PhaseRecord) -> None:
        """Add one record as one line, flushed to disk before returning."""
        data = record.to_dict() if isinstance(record, PhaseRecord) else dict(record)
        # json.dumps escapes newlines inside strings, so a record is always exactly one line.
        line = (json.dumps(data, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A crash or a full disk may have left a last line without its newline (O_RDWR is for
            # this pread); start on a new line so only the damaged record is lost, not this one too.
            # The flock keeps another appender's write from being half visible to this check.
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {self.path} ({written} of {len(line)} bytes): "
                              "check free disk space")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, env: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Records oldest first, only `env`'s if given, only the newest `limit` if given."""
        try:
            with self.path.open("rb") as file:
                # Shared lock: never see the half-written line of an append in progress.
                fcntl.flock(file, fcntl.LOCK_SH)
                text = file.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                log.warning("%s line %d is not valid JSON (%s); skipping it", self.path, number,
                            error)
                continue
            if not isinstance(record, dict):
                log.warning("%s line %d is not a record (a JSON object); skipping it", self.path,
                            number)
                continue
            if env is None or record.get("environment") == env:
                records.append(record)
        if limit is not None:
            records = records[max(len(records) - limit, 0):]
        return records

    def last(self, env: str) -> dict[str, Any] | None:
        """The newest record for `env`, or None."""
        records = self.read(env, limit=1)
        return records[0] if records else None

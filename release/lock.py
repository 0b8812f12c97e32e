"""One release at a time per environment: a lock file under `<project>/.release/locks/<env>.lock`.

Terraform's own state lock only covers a single `apply`; a canary or a rollout is many steps
(apply, wait, smoke, watch alarms, apply again), and two people interleaving those steps would
undo each other's routing. The lock file holds who took it, so a refused caller learns whom to ask.

A lock left behind by a process that died is never broken automatically (its release may have
been half done); the refusal says it is stale and names the file to remove.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from release.config import release_state_dir


def utc_timestamp() -> str:
    """Now as ISO 8601 UTC to the second, e.g. 2026-11-26T05:00:00Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry or USER
        return f"uid{os.getuid()}"


def current_caller() -> str:
    """Who is running this, as user@host (for lock files and the release history)."""
    return f"{_user()}@{socket.gethostname()}"


@dataclass(frozen=True)
class LockHolder:
    """What the lock file records about the process holding it."""

    user: str
    host: str
    pid: int
    command: str
    started_at: str

    @classmethod
    def current(cls, command: str) -> LockHolder:
        return cls(user=_user(), host=socket.gethostname(), pid=os.getpid(), command=command,
                   started_at=utc_timestamp())

    def is_stale(self) -> bool:
        """True when the holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False  # a process on another machine cannot be checked from here
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by another user
            return False
        return False


class ReleaseLockedError(Exception):
    """Another release holds the environment; the message names the holder and the way out."""

    def __init__(self, environment: str, path: Path, holder: LockHolder | None) -> None:
        self.environment = environment
        self.path = path
        self.holder = holder
        self.stale = holder is not None and holder.is_stale()
        if holder is None:
            message = (f"environment {environment} is locked ({path} holds no readable holder "
                       "info; it may be being written right now); retry in a moment, or remove "
                       f"{path} if no release is running")
        else:
            who = (f"environment {environment} is locked by {holder.user}@{holder.host} "
                   f"(pid {holder.pid}, `{holder.command}`) since {holder.started_at}")
            if self.stale:
                message = (f"{who}, but that process is gone (stale lock); check the environment "
                           f"with `invoke status`, then remove {path}")
            else:
                message = f"{who}; wait for it to finish, or remove {path} if that process is gone"
        super().__init__(message)


def _read_holder(path: Path) -> LockHolder | None:
    """The holder recorded in a lock file; None if it is missing or unreadable (half written)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(**data)
    except (OSError, ValueError, TypeError):
        return None


class ReleaseLock:
    """`with ReleaseLock("prod", "invoke canary"):` holds prod for the block, even if it raises."""

    def __init__(self, environment: str, command: str, *, directory: Path | None = None) -> None:
        self.environment = environment
        self.command = command
        self.path = Path(directory or release_state_dir() / "locks") / f"{environment}.lock"
        self.holder: LockHolder | None = None

    def acquire(self) -> LockHolder:
        """Take the lock or raise ReleaseLockedError; creation is atomic (O_CREAT | O_EXCL)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = LockHolder.current(self.command)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise ReleaseLockedError(self.environment, self.path, _read_holder(self.path)) from None
        try:
            os.write(fd, (json.dumps(asdict(holder)) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.holder = holder
        return holder

    def release(self) -> None:
        """Remove the lock file, but only if it is still ours (someone may have removed a stale
        one)."""
        if self.holder is not None and _read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def __enter__(self) -> ReleaseLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def lock_holder(environment: str, *, directory: Path | None = None) -> LockHolder | None:
    """Who holds `environment` now, for `invoke status`; None when it is free."""
    return _read_holder(Path(directory or release_state_dir() / "locks") / f"{environment}.lock")

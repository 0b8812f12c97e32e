"""The per-environment release lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from release.lock import LockHolder, ReleaseLock, ReleaseLockedError, current_caller, lock_holder


def write_lock(directory: Path, environment: str, **holder) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{environment}.lock"
    path.write_text(json.dumps({"user": "alice", "host": socket.gethostname(), "pid": os.getpid(),
                                "command": "invoke canary", "started_at": "2026-11-26T05:00:00Z",
                                **holder}))
    return path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_lock_file_records_the_holder_and_is_removed_on_exit(tmp_path):
    with ReleaseLock("prod", "invoke canary --weight=0.1", directory=tmp_path) as lock:
        recorded = json.loads(lock.path.read_text())
        assert lock.path == tmp_path / "prod.lock"
        assert recorded["pid"] == os.getpid()
        assert recorded["command"] == "invoke canary --weight=0.1"
        assert f"{recorded['user']}@{recorded['host']}" == current_caller()
        assert recorded["started_at"].endswith("Z")
        assert lock_holder("prod", directory=tmp_path) == LockHolder(**recorded)
    assert not lock.path.exists()
    assert lock_holder("prod", directory=tmp_path) is None


def test_second_acquisition_is_refused_with_the_holder(tmp_path):
    path = write_lock(tmp_path, "prod", user="alice", host="build-box", pid=123)
    with (pytest.raises(ReleaseLockedError) as refused,
          ReleaseLock("prod", "invoke promote", directory=tmp_path)):
        pytest.fail("the lock was granted twice")
    assert str(refused.value) == (
        "environment prod is locked by alice@build-box (pid 123, `invoke canary`) since "
        f"2026-11-26T05:00:00Z; wait for it to finish, or remove {path} if that process is gone")
    assert not refused.value.stale
    assert path.exists()  # the refused caller leaves the holder's lock alone


def test_a_live_holder_in_this_process_blocks_a_second_lock(tmp_path):
    with (ReleaseLock("staging", "invoke rollout", directory=tmp_path),
          pytest.raises(ReleaseLockedError, match=r"locked by .* \(pid \d+, `invoke rollout`\)")):
        ReleaseLock("staging", "invoke canary", directory=tmp_path).acquire()
    # Other environments are independent.
    with ReleaseLock("dev", "invoke canary", directory=tmp_path):
        pass


@pytest.mark.parametrize("interruption", [RuntimeError("boom"), KeyboardInterrupt()])
def test_lock_is_released_when_the_block_raises(tmp_path, interruption):
    with (pytest.raises(type(interruption)),
          ReleaseLock("prod", "invoke canary", directory=tmp_path)):
        raise interruption
    with ReleaseLock("prod", "invoke canary", directory=tmp_path):
        pass


def test_dead_holder_on_this_host_is_reported_stale_but_not_broken(tmp_path):
    path = write_lock(tmp_path, "prod", pid=dead_pid())
    with pytest.raises(ReleaseLockedError) as refused:
        ReleaseLock("prod", "invoke canary", directory=tmp_path).acquire()
    assert refused.value.stale
    assert "that process is gone (stale lock)" in str(refused.value)
    assert f"remove {path}" in str(refused.value)
    assert path.exists()


def test_unreadable_lock_file_still_refuses(tmp_path):
    tmp_path.joinpath("prod.lock").write_text("")
    with pytest.raises(ReleaseLockedError, match="holds no readable holder info"):
        ReleaseLock("prod", "invoke canary", directory=tmp_path).acquire()


def test_release_keeps_a_lock_someone_else_took_over(tmp_path):
    lock = ReleaseLock("prod", "invoke canary", directory=tmp_path)
    lock.acquire()
    # Someone removed our lock (they thought it stale) and another release took it.
    lock.path.unlink()
    other = write_lock(tmp_path, "prod", user="bob", pid=1)
    lock.release()
    assert other.exists()

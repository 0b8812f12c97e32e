"""`invoke synth`: run the CDKTF app (python main.py) only when something that feeds it changed.

The fingerprint covers the app, the constructs, the function code, the environment config and
the lock files; it is stored next to the output, so deleting `cdktf.out` forces a synth.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from release.config import CONFIG_PATH_VARIABLE, PROJECT_ROOT, ProjectConfig, synth_output_dir

SYNTH_INPUTS = ("main.py", "cdktf.json", "uv.lock", "package-lock.json", "modules", "functions")
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".terraform"}
FINGERPRINT_FILE = ".synth-fingerprint"


class SynthError(Exception):
    """The CDKTF app failed; the message carries its last error line."""


def fingerprint(config: ProjectConfig, root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    files = [config.path]
    for name in SYNTH_INPUTS:
        path = root / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        if IGNORED_PARTS.intersection(path.parts) or path.suffix == ".pyc" or not path.exists():
            continue
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_up_to_date(config: ProjectConfig, outdir: Path | None = None) -> bool:
    outdir = outdir or synth_output_dir()
    marker = outdir / FINGERPRINT_FILE
    stacks_present = all((outdir / "stacks" / name / "cdk.tf.json").is_file()
                         for name in config.stack_names)
    return stacks_present and marker.is_file() and marker.read_text().strip() == fingerprint(config)


def synthesize(config: ProjectConfig, outdir: Path | None = None) -> None:
    """Run `python main.py` with this interpreter (cdktf never loads into the caller)."""
    outdir = outdir or synth_output_dir()
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "CDKTF_OUTDIR": str(outdir), CONFIG_PATH_VARIABLE: str(config.path)},
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        last_line = lines[-1] if lines else f"exit {result.returncode}"
        raise SynthError(f"synth failed: {last_line}")
    (outdir / FINGERPRINT_FILE).write_text(fingerprint(config) + "\n")

"""The function's code archive, built so that the same source always gives the same bytes.

cdktf's own ARCHIVE assets store file modification times, so a fresh clone (new mtimes) would
change `source_code_hash` and publish a new Lambda version on an apply that only meant to move
traffic. This archive has fixed timestamps and permissions, sorted entries, and leaves out
Python's bytecode caches.
"""

import zipfile
from pathlib import Path

FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache"}


def package_files(source_dir: Path) -> list[Path]:
    return sorted(
        path for path in source_dir.rglob("*")
        if path.is_file()
        and not EXCLUDED_PARTS.intersection(path.relative_to(source_dir).parts)
        and path.suffix != ".pyc"
    )


def build_archive(source_dir: Path, destination: Path) -> Path:
    """Zip `source_dir` reproducibly into `destination` and return it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=9) as archive:
        for path in package_files(source_dir):
            entry = zipfile.ZipInfo(path.relative_to(source_dir).as_posix(), FIXED_TIMESTAMP)
            entry.external_attr = 0o644 << 16  # readable by the Lambda runtime user
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    return destination

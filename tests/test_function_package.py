"""The function's code archive: the same source gives the same bytes, so Terraform publishes a new
Lambda version only when the code really changed."""

import ast
import os
import stat
import zipfile
from pathlib import Path

from conftest import PROJECT_ROOT
from modules.function_package import build_archive

SOURCE_FILES = {
    "handler.py": b"def lambda_handler(event, context):\n    return {}\n",
    "release_info.py": b'RELEASE_VERSION = "1.0.0"\n',
    "lib/__init__.py": b"",
    "lib/formatting/json_body.py": b"import json\n",
    "templates/greeting.txt": "Grüße\n".encode(),
}
BYTECODE_FILES = (
    "__pycache__/handler.cpython-311.pyc",
    "lib/__pycache__/__init__.cpython-313.pyc",
    "stray.pyc",
    "lib/formatting/old.pyc",
)


def write_source(root: Path, mtime: int) -> Path:
    bytecode = {name: b"\x00bytecode" for name in BYTECODE_FILES}
    for relative, content in {**SOURCE_FILES, **bytecode}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))
    return root


def entries(archive: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.testzip() is None
        return {info.filename: info for info in bundle.infolist()}


def test_same_content_gives_identical_bytes_across_checkouts_and_times(tmp_path):
    # Two clones: different folders, different modification times, different output paths.
    first = write_source(tmp_path / "clone-a" / "functions" / "demo", mtime=1_000_000_000)
    second = write_source(tmp_path / "elsewhere" / "demo", mtime=1_750_000_000)
    os.chmod(second / "handler.py", 0o755)  # an executable bit from another checkout

    one = build_archive(first, tmp_path / "out-a" / "demo.zip")
    other = build_archive(second, tmp_path / "out-b" / "nested" / "package.zip")

    assert one == tmp_path / "out-a" / "demo.zip"
    assert one.read_bytes() == other.read_bytes()
    # And rebuilding in place after touching every file changes nothing either.
    for path in first.rglob("*"):
        os.utime(path, (1_800_000_000, 1_800_000_000))
    assert build_archive(first, tmp_path / "again.zip").read_bytes() == one.read_bytes()


def test_changed_content_gives_different_bytes(tmp_path):
    source = write_source(tmp_path / "demo", mtime=1_000_000_000)
    before = build_archive(source, tmp_path / "before.zip").read_bytes()
    (source / "release_info.py").write_bytes(b'RELEASE_VERSION = "1.0.1"\n')
    assert build_archive(source, tmp_path / "after.zip").read_bytes() != before


def test_archive_holds_the_source_files_with_posix_paths_and_no_bytecode(tmp_path):
    source = write_source(tmp_path / "demo", mtime=1_000_000_000)
    (source / ".pytest_cache" / "v").mkdir(parents=True)
    (source / ".pytest_cache" / "v" / "lastfailed").write_text("{}")
    (source / "empty-folder").mkdir()

    archive = build_archive(source, tmp_path / "demo.zip")

    found = entries(archive)
    assert sorted(found) == sorted(SOURCE_FILES)
    with zipfile.ZipFile(archive) as bundle:
        assert {name: bundle.read(name) for name in found} == SOURCE_FILES


def test_entries_are_readable_files_with_a_fixed_timestamp(tmp_path):
    source = write_source(tmp_path / "demo", mtime=1_000_000_000)
    os.chmod(source / "handler.py", 0o600)  # unreadable for the Lambda runtime user if kept
    for name, info in entries(build_archive(source, tmp_path / "demo.zip")).items():
        mode = info.external_attr >> 16
        assert stat.S_IMODE(mode) == 0o644, (name, oct(mode))
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_entries_are_in_a_stable_sorted_order(tmp_path):
    source = write_source(tmp_path / "demo", mtime=1_000_000_000)
    names = list(entries(build_archive(source, tmp_path / "demo.zip")))
    assert names == sorted(names, key=lambda name: Path(name).parts)


def test_demo_function_archive_holds_exactly_its_two_modules(tmp_path):
    names = entries(build_archive(PROJECT_ROOT / "functions" / "demo", tmp_path / "demo.zip"))
    assert sorted(names) == ["handler.py", "release_info.py"]


def test_packaging_imports_only_the_standard_library():
    # Tested and used without cdktf: the archive is built before any construct needs it.
    tree = ast.parse((PROJECT_ROOT / "modules" / "function_package.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"zipfile", "pathlib"}, imported

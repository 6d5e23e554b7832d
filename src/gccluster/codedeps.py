"""The source files a stage runs: the static import closure of its script within `gccluster`.

Two users, one rule: the resume fingerprint (`train.resume`) hashes these files, so state
saved by other code is never resumed, and the test that keeps each stage's code deps in
dvc.yaml complete (tests/test_stage_deps.py) compares them with dvc.yaml. Imports are read
from the syntax tree, at any depth (also those inside functions), so the closure holds every
module the stage may import, whichever branch runs.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from pathlib import Path

PACKAGE = "gccluster"


def default_source_root() -> Path:
    """The folder that holds the `gccluster` package being run (src/ of the checkout)."""
    return Path(__file__).resolve().parent.parent


def imported_names(path: Path) -> set[str]:
    """Every dotted name an `import` statement of `path` may load (for `from a import b`: a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_file(name: str, source_root: Path) -> Path | None:
    """The file of a `gccluster` module or package, or None (a name that is not a module)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = source_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_closure(entry: Path, source_root: Path | None = None,
                   skip: Callable[[Path, str], bool] | None = None) -> list[Path]:
    """`entry` and every `gccluster` file it imports, directly or not, with the `__init__.py`
    of each package on the way (importing a.b.c runs a/__init__ and a/b/__init__), sorted.
    `skip(file, name)` True leaves out the import of `name` by `file` (stagedeps cuts one kind)."""
    source_root = source_root or default_source_root()
    seen: set[Path] = set()
    pending = [Path(entry)]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            if skip is not None and skip(path, name):
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                found = module_file(".".join(parts[:depth]), source_root)
                if found is not None and found not in seen:
                    pending.append(found)
    return sorted(seen)


def code_digest(files: list[Path], source_root: Path | None = None) -> str:
    """sha256 over the files' paths (relative to `source_root` where they lie under it) and
    contents: equal for the same code wherever the checkout is."""
    source_root = (source_root or default_source_root()).resolve()
    digest = hashlib.sha256()
    for path in sorted(Path(p).resolve() for p in files):
        name = path.relative_to(source_root).as_posix() if path.is_relative_to(source_root) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

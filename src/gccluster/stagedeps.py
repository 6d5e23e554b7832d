"""The code dependencies dvc.yaml lists for each stage, and a command that rewrites them.

One rule, used by the test that keeps dvc.yaml complete (tests/test_stage_deps.py), by the
end-to-end staleness check and by `python -m gccluster.stagedeps` (which rewrites dvc.yaml's
`src/` and `stages/` deps after an import changes):

- a stage depends on its script and the script's import closure within `gccluster`
  (gccluster.codedeps), so editing any module it may run reruns it;
- except the baselines' code for the GCC stages: config.py validates every params section,
  so every stage imports the baselines' params modules, but those only check `baselines.*`,
  which no GCC stage reads (nor lists as params). Leaving them out means that adding or
  editing a baseline reruns only its stage and the report;
- `baseline@<name>` imports its method by name: it lists the shared closure of every
  method and the method's own folder `src/gccluster/baselines/${item}`, but not what the
  params aggregator (`baselines/params.py`) alone imports of the other methods (their
  `params.py` and package `__init__.py`): by the same reasoning, that only validates sections
  this stage does not read (it lists `baselines.${item}` alone), so editing one method's params
  module reruns that method's stage and the report only. A method that imports another
  method's module itself still lists it.

Not imported by any stage, so editing this file reruns nothing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from gccluster.codedeps import import_closure

BASELINES = "src/gccluster/baselines/"
# Stages that run the baselines' code, not only the validation of their params section.
READS_BASELINES = ("stages/baseline.py", "stages/report.py")
METHOD_FOLDER = "src/gccluster/baselines/${item}"
# The module that gathers every method's params section for config.py's validation.
PARAMS_AGGREGATOR = "src/gccluster/baselines/params.py"


def closure(path: str, root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in import_closure(root / path, root / "src")}


def closure_past_validation(path: str, root: Path) -> set[str]:
    """`closure`, except the methods' packages that only the params aggregator imports (for
    config.py's validation of every `baselines.<name>` section)."""
    aggregator = root / PARAMS_AGGREGATOR
    methods = {folder.rstrip("/").rsplit("/", 1)[1] for folder in method_folders(root)}

    def validation_only(file: Path, name: str) -> bool:
        parts = name.split(".")
        return file == aggregator and len(parts) > 2 and parts[:2] == ["gccluster", "baselines"] and parts[2] in methods

    return {p.relative_to(root).as_posix() for p in import_closure(root / path, root / "src", validation_only)}


def method_folders(root: Path) -> list[str]:
    """Every method's folder: the subpackages of baselines with a `method.py`."""
    return sorted(p.parent.relative_to(root).as_posix() + "/" for p in (root / BASELINES).glob("*/method.py"))


def expected_code_deps(script: str, root: Path) -> set[str]:
    """dvc.yaml's code deps of the stage that runs `script` (a path relative to `root`)."""
    expected = closure(script, root)
    if script not in READS_BASELINES:
        expected = {p for p in expected if not p.startswith(BASELINES)}
    if script == "stages/baseline.py":
        expected = closure_past_validation(script, root)
        for folder in method_folders(root):
            expected |= {p for p in closure_past_validation(folder + "method.py", root) if not p.startswith(folder)}
        expected.add(METHOD_FOLDER)
    return expected


def script_of(stage: dict) -> str:
    words = stage["cmd"].split()
    if words[0] != "python" or not words[1].startswith("stages/"):
        raise ValueError(f"a stage command must be `python stages/<script>.py ...`, got {stage['cmd']!r}")
    return words[1]


def rewrite_code_deps(dvc_yaml: Path) -> list[str]:
    """Replace each stage's block of `src/` and `stages/` deps in dvc.yaml by the expected one
    (sorted, `${item}` lines kept where they are); comments and everything else stay.
    Returns the names of the stages whose deps changed."""
    root = dvc_yaml.resolve().parent
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    code_line = re.compile(r"^(\s+)- ((?:src|stages)/\S+)$")
    lines, out, changed = dvc_yaml.read_text().split("\n"), [], []
    stage, i = None, 0
    while i < len(lines):
        header = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", lines[i])
        if header and header.group(1) in stages:
            stage = header.group(1)
        match = code_line.match(lines[i])
        if match and stage and "${item}" not in lines[i]:
            j = i
            while j < len(lines) and code_line.match(lines[j]) and "${item}" not in lines[j]:
                j += 1
            definition = stages[stage].get("do", stages[stage])
            expected = sorted(d for d in expected_code_deps(script_of(definition), root) if "${item}" not in d)
            block = [f"{match.group(1)}- {dep}" for dep in expected]
            if block != lines[i:j]:
                changed.append(stage)
            out += block
            i, stage = j, None  # one block of code deps per stage
            continue
        out.append(lines[i])
        i += 1
    dvc_yaml.write_text("\n".join(out))
    return changed


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("dvc.yaml")
    changed = rewrite_code_deps(path)
    print(f"{path}: code deps rewritten for {', '.join(changed)}" if changed else f"{path}: code deps already current")

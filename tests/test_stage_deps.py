"""dvc.yaml lists, for every stage, exactly the code the stage runs: its script and the import
closure of that script within `gccluster` (gccluster.codedeps), by the rule of
gccluster.stagedeps (`python -m gccluster.stagedeps` rewrites them). A file missing from a
stage's deps would let an edit of it change the stage's result without DVC rerunning the stage."""

import re

import pytest
import yaml

from conftest import ROOT
from gccluster import stagedeps
from gccluster.baselines.params import METHOD_NAMES
from gccluster.config import ROUND_DIFFUSION_KEYS, SAMPLING_KEYS, SCHEDULE_KEYS, DiffusionConfig, GCCConfig
from gccluster.stagedeps import BASELINES, READS_BASELINES, expected_code_deps, script_of

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_definitions():
    for name, stage in PIPELINE.items():
        yield name, stage.get("do", stage)


def code_deps(stage: dict) -> set[str]:
    return {dep for dep in stage["deps"] if dep.startswith(("src/", "stages/"))}


def closure(path: str) -> set[str]:
    return stagedeps.closure(path, ROOT)


@pytest.mark.parametrize("name,stage", list(stage_definitions()), ids=list(PIPELINE))
def test_stage_code_deps_are_the_import_closure_of_its_script(name, stage):
    expected = expected_code_deps(script_of(stage), ROOT)
    listed = code_deps(stage)
    missing, extra = sorted(expected - listed), sorted(listed - expected)
    assert not missing and not extra, (
        f"dvc.yaml stage {name}: add to deps: {missing or 'nothing'}; remove from deps: {extra or 'nothing'}"
    )


def test_the_baseline_stage_covers_every_registered_method():
    assert stagedeps.method_folders(ROOT) == [f"{BASELINES}{name}/" for name in sorted(METHOD_NAMES)]


def test_rewriting_a_current_dvc_yaml_changes_nothing(tmp_path):
    copy = tmp_path / "dvc.yaml"
    copy.write_text((ROOT / "dvc.yaml").read_text())
    for folder in ("src", "stages"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    assert stagedeps.rewrite_code_deps(copy) == []
    assert copy.read_text() == (ROOT / "dvc.yaml").read_text()


def test_gcc_stages_import_only_the_baselines_params_modules():
    """What the rule above leaves out of a GCC stage's deps is params validation, no method code."""
    for _, stage in stage_definitions():
        script = script_of(stage)
        if script in READS_BASELINES:
            continue
        left_out = {p for p in closure(script) if p.startswith(BASELINES)}
        assert all(p.endswith(("/params.py", "/__init__.py")) for p in left_out), (script, sorted(left_out))


def fake_project(root, precise_imports_dccs_params: bool):
    """A project tree shaped like ours: config.py validates every method's params section
    through the aggregator; each method's `method.py` imports its own params and common code."""
    files = {
        "stages/baseline.py": "from gccluster.config import load_params\nfrom gccluster.baselines.registry import m\n",
        "src/gccluster/__init__.py": "",
        "src/gccluster/config.py": "from gccluster.baselines.params import BaselinesConfig\n",
        "src/gccluster/sections.py": "",
        "src/gccluster/baselines/__init__.py": "",
        "src/gccluster/baselines/registry.py": "from gccluster.baselines.params import METHOD_NAMES\n",
        "src/gccluster/baselines/common.py": "from gccluster.config import load_params\n",
        "src/gccluster/baselines/params.py": ("from gccluster.sections import Section\n"
                                              "from gccluster.baselines.dccs.params import DCCSConfig\n"
                                              "from gccluster.baselines.precise.params import PreciseConfig\n"),
    }
    for method in ("dccs", "precise"):
        files[f"src/gccluster/baselines/{method}/__init__.py"] = ""
        files[f"src/gccluster/baselines/{method}/params.py"] = "from gccluster.sections import Section\n"
        files[f"src/gccluster/baselines/{method}/method.py"] = (
            f"from gccluster.baselines.common import x\nfrom gccluster.baselines.{method}.params import C\n")
    if precise_imports_dccs_params:
        files["src/gccluster/baselines/precise/method.py"] += "from gccluster.baselines.dccs.params import DCCSConfig\n"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_baseline_stage_lists_other_methods_params_only_when_a_method_imports_them(tmp_path):
    """`baseline@<name>` leaves out what only params validation imports of the other methods,
    and keeps a module some method imports itself (its edit would change that method's result)."""
    shared = {"stages/baseline.py", "src/gccluster/__init__.py", "src/gccluster/config.py",
              "src/gccluster/sections.py", "src/gccluster/baselines/__init__.py",
              "src/gccluster/baselines/registry.py", "src/gccluster/baselines/common.py",
              "src/gccluster/baselines/params.py", stagedeps.METHOD_FOLDER}
    alone = fake_project(tmp_path / "alone", precise_imports_dccs_params=False)
    assert expected_code_deps("stages/baseline.py", alone) == shared
    assert "src/gccluster/baselines/dccs/params.py" in stagedeps.closure("stages/baseline.py", alone)
    coupled = fake_project(tmp_path / "coupled", precise_imports_dccs_params=True)
    assert expected_code_deps("stages/baseline.py", coupled) == shared | {
        "src/gccluster/baselines/dccs/params.py", "src/gccluster/baselines/dccs/__init__.py"}


def test_a_baseline_stage_leaves_out_only_the_other_methods_params_modules():
    """Of the code `baseline@<name>` runs (its script and `<name>/method.py`), dvc.yaml may leave
    out only other methods' params validation (their `params.py` and package `__init__.py`)."""
    listed = expected_code_deps("stages/baseline.py", ROOT)
    for folder in stagedeps.method_folders(ROOT):
        runs = closure("stages/baseline.py") | closure(folder + "method.py")
        left_out = {p for p in runs - listed if not p.startswith(folder)}
        assert all(p.endswith(("/params.py", "/__init__.py")) for p in left_out), (folder, sorted(left_out))


def test_every_stage_script_is_in_the_pipeline():
    scripts = {script_of(stage) for _, stage in stage_definitions()}
    assert scripts == {p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")}


def params_listed(stage: dict, section: str) -> set[str]:
    return {key.removeprefix(f"{section}.") for key in stage["params"] if key.startswith(f"{section}.")}


def diffusion_keys(stage: dict) -> set[str]:
    return params_listed(stage, "diffusion")


def test_diffusion_params_are_split_between_training_and_sampling():
    """Sampling keys never retrain the Stage I DDPM; each stage lists what it reads."""
    stages = dict(stage_definitions())
    assert diffusion_keys(stages["diffusion"]) == set(DiffusionConfig.model_fields) - set(SAMPLING_KEYS)
    assert diffusion_keys(stages["diffusion_samples"]) == set(SCHEDULE_KEYS) | set(SAMPLING_KEYS)
    assert diffusion_keys(stages["round"]) == set(ROUND_DIFFUSION_KEYS)
    assert "gcc.rounds.${key}" in stages["round"]["params"] and "gcc.rounds" not in stages["round"]["params"]


# gcc keys that belong to the chain, not to one round: each round reads only its own entry of
# gcc.rounds (listed as gcc.rounds.${key}); `evaluate` reads the chain's end and its result.
CHAIN_KEYS = {"rounds", "final_round", "select_round"}


def test_a_round_depends_on_every_gcc_key_it_trains_with():
    """A key missing here lets `dvc exp run -S gcc.<key>=...` keep (or restore from the run
    cache) rounds trained with the old value: gcc.ml_reduction was missing until 2026-12-04."""
    stages = dict(stage_definitions())
    listed = params_listed(stages["round"], "gcc") - {"rounds.${key}"}
    assert listed == set(GCCConfig.model_fields) - CHAIN_KEYS
    assert params_listed(stages["evaluate"], "gcc") >= CHAIN_KEYS - {"rounds"}


def covers(listed: list[str], section: str, key: str) -> bool:
    return any(entry in (section, f"{section}.{key}") or entry.startswith(f"{section}.{key}.") for entry in listed)


# Reads of `params.<section>.<name>` that are not a param: pydantic methods, and the list the
# baseline stage's foreach runs over.
NOT_PARAMS = {("base", "model_dump"), ("diffusion", "model_dump"), ("baselines", "run")}


@pytest.mark.parametrize("name,stage", list(stage_definitions()), ids=list(PIPELINE))
def test_every_param_a_stage_script_reads_is_a_dependency(name, stage):
    """Each `params.<section>.<key>` the stage script reads is in its dvc.yaml params (base.nproc
    and base.precision were read but not listed by some stages until 2026-12-04)."""
    text = (ROOT / script_of(stage)).read_text()
    reads = set(re.findall(r"params\.(\w+)\.(\w+)", text)) - NOT_PARAMS
    missing = sorted(f"{section}.{key}" for section, key in reads if not covers(stage.get("params", []), section, key))
    assert not missing, f"dvc.yaml stage {name}: add to params: {missing}"


def test_the_check_sees_a_missing_param():
    assert not covers(["base.seed", "gcc.lr"], "base", "nproc")
    assert covers(["base"], "base", "nproc") and covers(["gcc.weights.d"], "gcc", "weights")


def dependency_keys() -> set[str]:
    """The params keys of dvc.yaml that every full params file must hold (DVC stops on a
    missing one); templated keys are left out."""
    keys = set()
    for _, stage in stage_definitions():
        keys |= {key for key in stage.get("params", []) if "${" not in key}
    return keys


def lookup(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return KeyError
        node = node[part]
    return node


FULL_PARAMS_FILES = sorted(p for p in ROOT.glob("benchmarks/**/*.yaml")
                           if {"base", "gcc", "evaluate"} <= set(yaml.safe_load(p.read_text()) or {}))


@pytest.mark.parametrize("path", [ROOT / "params.yaml", *FULL_PARAMS_FILES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_full_params_files_hold_every_key_dvc_depends_on(path):
    """The committed params.yaml and the benchmarks' complete params files (which the README
    tells readers to copy in as params.yaml) run with today's dvc.yaml."""
    params = yaml.safe_load(path.read_text())
    missing = sorted(key for key in dependency_keys() if lookup(params, key) is KeyError)
    assert not missing, f"{path.relative_to(ROOT)}: add {missing}"

"""dvc.yaml lists, for every stage, exactly the code the stage runs: its script and the import
closure of that script within `gccluster` (gccluster.codedeps), by the rule of
gccluster.stagedeps (`python -m gccluster.stagedeps` rewrites them). A file missing from a
stage's deps would let an edit of it change the stage's result without DVC rerunning the stage."""

import pytest
import yaml

from conftest import ROOT
from gccluster import stagedeps
from gccluster.baselines.params import METHOD_NAMES
from gccluster.config import ROUND_DIFFUSION_KEYS, SAMPLING_KEYS, SCHEDULE_KEYS, DiffusionConfig
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


def test_every_stage_script_is_in_the_pipeline():
    scripts = {script_of(stage) for _, stage in stage_definitions()}
    assert scripts == {p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")}


def diffusion_keys(stage: dict) -> set[str]:
    return {key.removeprefix("diffusion.") for key in stage["params"] if key.startswith("diffusion.")}


def test_diffusion_params_are_split_between_training_and_sampling():
    """Sampling keys never retrain the Stage I DDPM; each stage lists what it reads."""
    stages = dict(stage_definitions())
    assert diffusion_keys(stages["diffusion"]) == set(DiffusionConfig.model_fields) - set(SAMPLING_KEYS)
    assert diffusion_keys(stages["diffusion_samples"]) == set(SCHEDULE_KEYS) | set(SAMPLING_KEYS)
    assert diffusion_keys(stages["round"]) == set(ROUND_DIFFUSION_KEYS)
    assert "gcc.rounds.${key}" in stages["round"]["params"] and "gcc.rounds" not in stages["round"]["params"]

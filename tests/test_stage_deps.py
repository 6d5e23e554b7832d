"""dvc.yaml lists, for every stage, exactly the code the stage runs: its script and the import
closure of that script within `gccluster` (gccluster.codedeps). A file missing from a stage's
deps would let an edit of it change the stage's result without DVC rerunning the stage."""

import pytest
import yaml

from conftest import ROOT
from gccluster.baselines.params import METHOD_NAMES
from gccluster.codedeps import import_closure
from gccluster.config import ROUND_DIFFUSION_KEYS, SAMPLING_KEYS, SCHEDULE_KEYS, DiffusionConfig

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_definitions():
    for name, stage in PIPELINE.items():
        yield name, stage.get("do", stage)


def code_deps(stage: dict) -> set[str]:
    return {dep for dep in stage["deps"] if dep.startswith(("src/", "stages/"))}


def script_of(stage: dict) -> str:
    words = stage["cmd"].split()
    assert words[0] == "python" and words[1].startswith("stages/"), stage["cmd"]
    return words[1]


def closure(path: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in import_closure(ROOT / path, ROOT / "src")}


BASELINES = "src/gccluster/baselines/"
# Stages that read the baselines' code, not only the validation of their params section.
READS_BASELINES = ("stages/baseline.py", "stages/report.py")


def expected_code_deps(script: str) -> set[str]:
    expected = closure(script)
    if script not in READS_BASELINES:
        # config.py validates every section, the baselines' too, so the GCC stages import the
        # baselines' params modules; those check `baselines.*` only, which no GCC stage reads
        # (nor lists as params), so editing or adding a baseline does not rerun GCC.
        expected = {p for p in expected if not p.startswith(BASELINES)}
    if script == "stages/baseline.py":
        # Methods are imported by name: each one's shared code is listed, its own folder is
        # the dependency `src/gccluster/baselines/${item}`.
        for name in METHOD_NAMES:
            folder = f"src/gccluster/baselines/{name}/"
            expected |= {p for p in closure(folder + "method.py") if not p.startswith(folder)}
        expected.add("src/gccluster/baselines/${item}")
    return expected


@pytest.mark.parametrize("name,stage", list(stage_definitions()), ids=list(PIPELINE))
def test_stage_code_deps_are_the_import_closure_of_its_script(name, stage):
    expected = expected_code_deps(script_of(stage))
    listed = code_deps(stage)
    missing, extra = sorted(expected - listed), sorted(listed - expected)
    assert not missing and not extra, (
        f"dvc.yaml stage {name}: add to deps: {missing or 'nothing'}; remove from deps: {extra or 'nothing'}"
    )


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

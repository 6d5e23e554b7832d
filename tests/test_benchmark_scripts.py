"""The baselines' step-time benchmarks call their method's private training steps, whose
signatures change with the method (the data-parallel refactor of issue 18 broke three of the
four without any test noticing). One timed step of each, fp32 and bf16, at a small size: the
scripts run and write positive times. No number is checked against a speed goal."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from conftest import ROOT

# script, its arguments for one cheap step, the keys that must hold positive times
STEP_TIME_SCRIPTS = [
    ("dccs_step_time.py", ["--steps", "1", "--warmup", "0"], ["encoder_step_ms_median", "critic_step_ms_median"]),
    ("drc_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"], ["step_ms_median"]),
    ("gatcluster_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"],
     ["step1_ms", "step2_ms", "iteration_s"]),
    ("precise_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"],
     ["critic_ms", "classifier_ms", "generator_ms"]),
]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, args, keys", STEP_TIME_SCRIPTS, ids=[s for s, _, _ in STEP_TIME_SCRIPTS])
def test_step_time_benchmark_runs_the_methods_own_steps(script, args, keys, tmp_path):
    out = tmp_path / "times.json"
    result = CliRunner().invoke(load_script(script).app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    written = json.loads(out.read_text())
    for precision in ("fp32", "bf16"):
        for key in keys:
            assert written[precision][key] > 0, (precision, key)

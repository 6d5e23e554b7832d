"""Kill a stage mid-run (SIGKILL), rerun `dvc repro`: it resumes and ends where an
uninterrupted run ends; two runs with the same seed give byte-identical metrics."""

import copy
import os
import signal
import subprocess
import time

import pytest

from conftest import ROOT, TINY_OVERRIDES, run, stage_env
from gccluster.scratch_project import copy_pipeline, deep_update

# Enough pretraining epochs that the kill lands between the first saved epoch and the end.
# GCC's stages up to evaluate (which writes metrics.json); each baseline's resume has its own
# test (test_an_interrupted_run_resumes_to_the_same_model in tests/test_baselines.py and each
# method's test file).
OVERRIDES = deep_update(copy.deepcopy(TINY_OVERRIDES), {"pretrain": {"epochs": 8}, "baselines": {"run": []}})


def new_repo(path):
    project = copy_pipeline(ROOT, path, OVERRIDES)
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny"], project)
    return project


@pytest.mark.e2e
def test_sigkill_resume_matches_uninterrupted_run_and_runs_are_byte_identical(tmp_path):
    reference = new_repo(tmp_path / "reference")
    run(["dvc", "repro", "evaluate"], reference)
    expected = (reference / "results" / "metrics.json").read_bytes()

    killed = new_repo(tmp_path / "killed")
    state = killed / ".scratch" / "pretrain" / "state.pt"
    proc = subprocess.Popen(["dvc", "repro", "evaluate"], cwd=killed, env=stage_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), "pretrain never saved an epoch state"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: dvc and the stage it runs
    proc.wait()
    assert not (killed / "results" / "pretrain" / "backbone.pt").exists()

    resumed = run(["dvc", "repro", "evaluate"], killed)
    assert "pretrain: resuming after epoch" in resumed.stdout
    assert not (killed / ".scratch").exists()
    assert (killed / "results" / "metrics.json").read_bytes() == expected

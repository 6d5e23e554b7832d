"""Stages stop on bad input with exit code 2 and one line, and write no output."""

import sys

import pytest

from conftest import run, set_params


def outputs(project):
    """Every file under data/ and results/ (the declared outputs live there)."""
    return sorted(
        p.relative_to(project).as_posix()
        for folder in ("data", "results")
        for p in (project / folder).rglob("*")
        if p.is_file()
    )


@pytest.mark.parametrize(
    "overrides,stage,expected",
    [
        ({"data": {"dataset": "imagenet"}}, "data", "params.yaml: data.dataset = 'imagenet': Input should be 'digits'"),
        ({"pretrain": {"epochs": -1}}, "pretrain", "params.yaml: pretrain.epochs = -1: Input should be greater than or equal to 1"),
        ({"data": {"dataset": "cifar10", "local_dir": "/nonexistent/cifar"}}, "data",
         "data.local_dir = '/nonexistent/cifar': folder does not exist"),
    ],
)
def test_stage_stops_with_one_line_and_no_output(project, overrides, stage, expected):
    set_params(project, overrides)
    before = outputs(project)
    result = run([sys.executable, f"stages/{stage}.py"], project, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{stage}: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert outputs(project) == before


def test_missing_upstream_output_is_one_line(project):
    result = run([sys.executable, "stages/pseudolabel.py"], project, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "pseudolabel: error: data/prepared: no prepared dataset (run the data stage first)"


def test_corrupt_checkpoint_is_named(project):
    run([sys.executable, "stages/data.py"], project)
    (project / "results" / "pretrain").mkdir(parents=True)
    (project / "results" / "pretrain" / "backbone.pt").write_bytes(b"\x00garbage")
    result = run([sys.executable, "stages/pseudolabel.py"], project, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "pseudolabel: error: results/pretrain/backbone.pt: corrupt or unreadable checkpoint"
    )
    assert not (project / "results" / "pseudolabel").exists()

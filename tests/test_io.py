"""Atomic writes leave the old file or none; curves are written as dvc-plots CSV."""

import pytest

from gccluster.io import atomic_path, write_epoch_curves, write_json


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"acc": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == '{\n  "acc": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_epoch_curves_csv(tmp_path):
    path = tmp_path / "loss.csv"
    write_epoch_curves(path, total=[1.0, 0.5], d=[0.25, 0.125])
    assert path.read_text() == "epoch,total,d\n1,1,0.25\n2,0.5,0.125\n"
    with pytest.raises(ValueError):
        write_epoch_curves(path, total=[1.0], d=[1.0, 2.0])

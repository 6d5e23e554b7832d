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


def test_read_npz_names_file_and_content_when_unreadable(tmp_path):
    import numpy as np

    from gccluster.errors import UserError
    from gccluster.io import read_npz, write_npz

    good = tmp_path / "bank.npz"
    write_npz(good, images=np.zeros((2, 3), np.uint8), labels=np.array([0, 1]))
    np.testing.assert_array_equal(read_npz(good, ("labels",), "bank")["labels"], [0, 1])
    with pytest.raises(UserError, match=r"bank\.npz: unreadable K-means centers \(.*centers"):
        read_npz(good, ("centers",), "K-means centers")
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match=r"broken\.npz: unreadable bank"):
        read_npz(bad, ("images",), "bank")

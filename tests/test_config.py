"""Params validation: one line naming key, value and what is allowed; presets are valid."""

import pytest


from conftest import ROOT
from gccluster.config import Params, load_params, validate_params
from gccluster.errors import UserError
from gccluster.presets import preset_names, preset_params, render_params


@pytest.mark.parametrize(
    "raw,expected",
    [
        ({"data": {"dataset": "imagenet"}}, r"data\.dataset = 'imagenet': .*'digits'.*'stl10'"),
        ({"pretrain": {"epochs": -1}}, r"pretrain\.epochs = -1: .*greater than or equal to 1"),
        ({"pretrain": {"epochs": "ten"}}, r"pretrain\.epochs = 'ten': .*integer"),
        ({"pretrain": {"temperature": 0}}, r"pretrain\.temperature = 0: .*greater than 0"),
        ({"pretrain": {"backbone": "vgg"}}, r"pretrain\.backbone = 'vgg': .*'small_cnn'.*'resnet18'"),
        ({"pretrain": {"optimizer": {"lr": -0.1}}}, r"pretrain\.optimizer\.lr = -0\.1"),
        ({"pretrain": {"epoch": 3}}, r"unknown key pretrain\.epoch \(allowed in pretrain: backbone, .*epochs"),
        ({"surprise": {}}, r"unknown key surprise \(allowed in the top level: base, data"),
        ({"base": {"device": "tpu"}}, r"base\.device = 'tpu': .*'auto'.*'cpu'.*'cuda'"),
        ({"base": {"precision": "fp16"}}, r"base\.precision = 'fp16': .*'auto'.*'fp32'.*'bf16'"),
        ({"base": {"seed": -3}}, r"base\.seed = -3"),
        ({"data": {"test_fraction": 1.5}}, r"data\.test_fraction = 1\.5: .*less than 1"),
        ({"data": {"stl10_unlabeled": True}}, r"stl10_unlabeled = true needs data\.dataset = stl10"),
        ({"pseudolabel": {"n_clusters": 1}}, r"pseudolabel\.n_clusters = 1: .*greater than or equal to 2"),
        ({"data": {"image_size": 4}}, r"data\.image_size = 4"),
        ({"data": {"imbalance_remove": [0.1, 1.0]}}, r"data\.imbalance_remove = \[0\.1, 1\.0\]: each fraction must be in \[0, 1\)"),
        ({"diffusion": {"beta_start": 0.1, "beta_end": 0.01}}, r"beta_end \(0\.01\) must exceed diffusion\.beta_start"),
        ({"diffusion": {"sampler": "euler"}}, r"diffusion\.sampler = 'euler': .*'ddim'.*'ddpm'"),
        ({"diffusion": {"sample_steps": 2000}}, r"sample_steps \(2000\) must not exceed diffusion\.timesteps"),
        ({"gcc": {"bank_size": 5}}, r"gcc\.bank_size \(5\) must be at least pseudolabel\.n_clusters \(10\)"),
        ({"gcc": {"weights": {"ml": -1}}}, r"gcc\.weights\.ml = -1"),
        ({"gcc": {"bandwidth": "mean"}}, r"gcc\.bandwidth = 'mean': Input should be 'median' or"),
        ({"gcc": {"pairing": "random"}}, r"gcc\.pairing = 'random': Input should be 'predicted' or 'bank'"),
        ({"gcc": {"min_balance": 1.0}}, r"gcc\.min_balance = 1\.0: .*less than 1"),
        ({"gcc": {"final_round": "r2"}}, r"gcc\.final_round = 'r2': must be the last round of the chain, 'r3'"),
        ({"gcc": {"rounds": {"r1": {"init": "r0"}}, "final_round": "r1"}}, r"gcc\.rounds\.r1\.init = 'r0': must be pseudolabel or one of r1"),
        ({"gcc": {"rounds": {"a": {"init": "pseudolabel"}, "b": {"init": "a"}, "c": {"init": "a"}}, "final_round": "c"}},
         r"one chain starting at init: pseudolabel"),
        ({"gcc": {"rounds": {"diffusion": {"init": "pseudolabel"}}, "final_round": "diffusion"}},
         r"'diffusion' is not allowed as a round name"),
    ],
)
def test_bad_values_name_key_value_and_allowed(raw, expected):
    with pytest.raises(UserError, match=expected) as info:
        validate_params(raw)
    assert "\n" not in str(info.value)


def test_committed_params_equal_the_digits_preset():
    assert load_params(ROOT / "params.yaml") == preset_params("digits") == Params()


@pytest.mark.parametrize("name", ["digits", "fashion_mnist", "cifar10", "cifar100_20", "stl10"])
def test_every_preset_validates_and_round_trips(name, tmp_path):
    params = preset_params(name)
    assert params.data.dataset == name
    path = tmp_path / "params.yaml"
    path.write_text(render_params(params, name))
    assert load_params(path) == params


def test_paper_presets_use_resnet18_and_paper_head_settings():
    for name in ("cifar10", "cifar100_20", "stl10"):
        params = preset_params(name)
        assert params.pretrain.backbone == "resnet18"
        assert params.pseudolabel.lr == 1e-4 and params.pseudolabel.epochs == 100  # paper 4.1
    assert preset_params("cifar100_20").pseudolabel.n_clusters == 20


def test_unknown_preset_and_bad_yaml(tmp_path):
    assert "cifar10" in preset_names()
    with pytest.raises(UserError, match="unknown preset 'cifar11' \\(allowed: cifar10"):
        preset_params("cifar11")
    bad = tmp_path / "params.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)

"""Params validation: one line naming key, value and what is allowed; presets are valid."""

import pytest


from conftest import ROOT
from gccluster.config import Params, load_params, validate_params
from gccluster.errors import UserError
from gccluster.presets import preset_names, preset_params, is_untouched_preset_output, render_params, write_preset


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
        ({"gcc": {"mmd_estimator": "linear"}}, r"gcc\.mmd_estimator = 'linear': Input should be 'unbiased' or 'biased'"),
        ({"gcc": {"ml_scores": "probits"}}, r"gcc\.ml_scores = 'probits': Input should be 'softmax' or 'logits'"),
        ({"pretrain": {"readout": "max"}}, r"pretrain\.readout = 'max': Input should be 'flatten' or 'pool'"),
        # Cross-field rules: caught by validation, before a stage writes anything.
        ({"data": {"image_size": 15}},
         r"data\.image_size = 15 \(data\.dataset digits\) does not suit pretrain\.backbone = small_cnn: "
         r"it needs a size divisible by 4"),
        ({"data": {"dataset": "cifar10", "image_size": 30}}, r"data\.image_size = 30 \(data\.dataset cifar10\)"),
        ({"data": {"dataset": "stl10", "image_size": None}, "pretrain": {"backbone": "small_cnn"},
          "baselines": {"run": []}},
         None),  # 96 is divisible by 4: allowed (DCCS has no 96 px encoder: tests/test_baselines.py)
        ({"pretrain": {"augment": {"policy": "simclr"}}},
         r"pretrain\.augment\.policy = simclr needs RGB images .* digits is grayscale"),
        ({"data": {"dataset": "fashion_mnist", "image_size": None}, "pretrain": {"augment": {"policy": "simclr"}}},
         r"fashion_mnist is grayscale"),
        ({"pseudolabel": {"n_clusters": 1500}, "gcc": {"bank_size": 2000}}, r"pseudolabel\.n_clusters = 1500 exceeds the 1437 train images of digits"),
        ({"pseudolabel": {"n_clusters": 1500}, "data": {"protocol": "train+test"}, "gcc": {"bank_size": 1500}}, None),
        ({"data": {"imbalance_remove": [0.5] * 9}}, r"data\.imbalance_remove has 9 fractions; digits has 10 classes"),
    ],
)
def test_bad_values_name_key_value_and_allowed(raw, expected):
    if expected is None:  # a neighbour of a bad value that is fine
        validate_params(raw)
        return
    with pytest.raises(UserError, match=expected) as info:
        validate_params(raw)
    assert "\n" not in str(info.value)


def test_check_command_catches_a_size_the_backbone_cannot_take(tmp_path):
    """`gccluster check` says what the first stage would: image size 15 with small_cnn."""
    import sys

    from conftest import run

    path = tmp_path / "params.yaml"
    path.write_text("data:\n  image_size: 15\n")
    result = run([sys.executable, "-m", "gccluster.cli", "check", "--params", str(path)], tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"check: error: {path}: data.image_size = 15 (data.dataset digits) does not suit pretrain.backbone = "
        "small_cnn: it needs a size divisible by 4 (two 2x poolings)"
    ]


def test_committed_params_equal_the_digits_preset():
    assert load_params(ROOT / "params.yaml") == preset_params("digits") == Params()
    # Every key written out, as `gccluster preset digits` writes it (so it may replace it).
    assert is_untouched_preset_output((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("name", ["digits", "fashion_mnist", "cifar10", "cifar100_20", "stl10"])
def test_every_preset_validates_and_round_trips(name, tmp_path):
    params = preset_params(name)
    assert params.data.dataset == name
    path = tmp_path / "params.yaml"
    path.write_text(render_params(params, name))
    assert load_params(path) == params


def test_a_preset_replaces_another_presets_file_but_keeps_hand_edits(tmp_path):
    path = tmp_path / "params.yaml"
    write_preset("fashion_mnist", path, ["pretrain.epochs=7", "data.local_dir=my images"])
    assert "`gccluster preset fashion_mnist --set pretrain.epochs=7 --set 'data.local_dir=my images'`" \
        in path.read_text()
    write_preset("digits", path)  # a file a preset wrote as it stands: nothing to lose
    assert load_params(path) == Params()
    edited = path.read_text().replace("epochs: 100", "epochs: 101", 1)
    assert edited != path.read_text()
    path.write_text(edited)
    with pytest.raises(UserError, match="has changes no preset wrote.*--force"):
        write_preset("fashion_mnist", path)
    assert path.read_text() == edited
    path.write_text("# my run\n" + render_params(Params(), "digits"))  # an added comment counts too
    with pytest.raises(UserError, match="has changes no preset wrote"):
        write_preset("digits", path)
    with pytest.raises(UserError, match="has changes no preset wrote"):
        write_preset("fashion_mnist", path, ["pretrain.epochs=7"])  # --set is no licence either
    write_preset("fashion_mnist", path, force=True)
    assert load_params(path) == preset_params("fashion_mnist")


def test_paper_presets_use_resnet18_and_paper_head_settings():
    for name in ("cifar10", "cifar100_20", "stl10"):
        params = preset_params(name)
        assert params.pretrain.backbone.startswith("resnet18")
        assert params.pseudolabel.lr == 1e-4 and params.pseudolabel.epochs == 100  # paper 4.1
    # 32 px: the CIFAR stem; 96 px STL-10: torchvision's stem, as SCAN.
    assert preset_params("cifar10").pretrain.backbone == "resnet18"
    assert preset_params("stl10").pretrain.backbone == "resnet18_imagenet_stem"
    assert preset_params("cifar100_20").pseudolabel.n_clusters == 20


def test_unknown_preset_and_bad_yaml(tmp_path):
    assert "cifar10" in preset_names()
    with pytest.raises(UserError, match="unknown preset 'cifar11' \\(allowed: cifar10"):
        preset_params("cifar11")
    bad = tmp_path / "params.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)

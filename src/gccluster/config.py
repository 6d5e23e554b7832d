"""Typed parameters: `params.yaml` is loaded and validated here, once, for every stage.

The defaults below are the embedded default run (scikit-learn's `digits` on a small CNN,
sized for a 2-core CPU). Presets (`gccluster preset NAME`) overlay a few keys on these
defaults and write the complete, validated result to `params.yaml`.

A bad value stops with one line: the key, the value given and what is allowed.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from gccluster.baselines.params import BaselinesConfig
from gccluster.data.catalog import DATASETS, IMAGE_FOLDER, image_channels, max_train_images
from gccluster.errors import UserError
from gccluster.sections import Section as _Section


class BaseConfig(_Section):
    """Settings shared by all stages."""

    seed: int = Field(0, ge=0, description="seeds Python, NumPy and torch in every stage")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="autocast for training and sampling: auto = bf16 on CUDA and on CPUs with "
        "native bf16 (lscpu flag amx_bf16 or avx512_bf16), fp32 on other CPUs, where bf16 is slower",
    )
    data_root: str = Field("data/raw", description="where torchvision downloads datasets")
    nproc: int = Field(
        1, ge=1, le=1024,
        description="processes per node for the training stages (pretrain, diffusion, rounds, baselines): "
        "> 1 runs each under torchrun with DistributedDataParallel (gccluster.distributed)",
    )


class DataConfig(_Section):
    """Which dataset, from where, and how it is split (paper 4.1)."""

    # image_folder: a user's own images under data.local_dir (PNG, JPEG, WebP; see
    # gccluster.data.folder and the README, "Cluster your own images").
    dataset: Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100_20", "stl10", "image_folder"] = "digits"
    # A folder holding the dataset's official files; null = look in data_root and the
    # system folders (Debian's dataset-fashion-mnist), then download if allowed. For
    # image_folder: the folder of images (required).
    local_dir: str | None = None
    download: bool = True
    # Side of the square images the pipeline sees; null = the dataset's native size (an
    # image_folder has none: set it). digits are 8x8: 16 leaves room for crops and two
    # poolings in the small CNN.
    image_size: int | None = Field(16, ge=8, le=512)
    # image_folder only: 1 = grayscale, 3 = RGB; null = RGB. Every image is converted.
    channels: Literal[1, 3] | None = None
    # image_folder only: class labels (for evaluation, never for training) from first-level
    # subfolders: auto = when every image is in one and there are at least two, subfolders =
    # required, none = label-free even with subfolders.
    folder_labels: Literal["auto", "subfolders", "none"] = "auto"
    # image_folder only: larger images are skipped and listed (Pillow refuses above twice
    # its default limit, 178,956,970 pixels).
    max_image_pixels: int = Field(89_478_485, ge=1, le=178_956_970)
    # "train": fit on the train split, report on the test split (GCC, SCAN).
    # "train+test": fit and report on both splits together (DCCS and older papers); for an
    # image_folder every image once, in both.
    protocol: Literal["train", "train+test"] = "train"
    # digits and image_folder ship unsplit: a split (stratified when there are labels) with
    # its own seed, so changing base.seed does not change the data.
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0)
    stl10_unlabeled: bool = Field(False, description="add STL-10's 100k unlabelled images to pretraining")
    # Imbalanced study (Fig. 2b/c): fraction of each class's train images to remove, one
    # value per class in class order (null = balanced). The test split is never touched.
    imbalance_remove: tuple[float, ...] | None = None
    imbalance_seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _cross_checks(self) -> DataConfig:
        if self.imbalance_remove is not None and any(not 0.0 <= f < 1.0 for f in self.imbalance_remove):
            raise ValueError(
                f"data.imbalance_remove = {list(self.imbalance_remove)}: each fraction must be in [0, 1)"
            )
        if self.stl10_unlabeled and self.dataset != "stl10":
            raise ValueError(
                f"data.stl10_unlabeled = true needs data.dataset = stl10, not {self.dataset}"
            )
        if self.dataset == IMAGE_FOLDER:
            if self.local_dir is None:
                raise ValueError("data.dataset = image_folder needs data.local_dir, the folder of images")
            if self.image_size is None:
                raise ValueError("data.dataset = image_folder needs data.image_size (the images have no native size)")
            if self.imbalance_remove is not None:
                raise ValueError("data.imbalance_remove is for the built-in datasets, not image_folder")
        elif self.channels is not None:
            raise ValueError(
                f"data.channels = {self.channels} is for data.dataset = image_folder; {self.dataset} keeps its own "
                "(allowed: null)"
            )
        return self

    def resolved_channels(self) -> int:
        return image_channels(self.dataset, self.channels)


class OptimizerConfig(_Section):
    name: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")


class AugmentConfig(_Section):
    """SimCLR view augmentations; `auto` picks the policy that suits the dataset."""

    policy: Literal["auto", "digits", "grayscale", "simclr"] = "auto"
    # Lower bound of the random-resized-crop area; null = the policy's own default.
    crop_min_scale: float | None = Field(None, gt=0.0, le=1.0)
    # Brightness and contrast jitter strength (applied with p 0.8); null = the policy's default.
    jitter: float | None = Field(None, ge=0.0, le=1.0)
    # Probability of erasing one random rectangle of each view; null = the policy's default.
    erasing: float | None = Field(None, ge=0.0, le=1.0)
    # Who draws the views: kornia (the reference), fused (the same distributions in a few
    # batched kernels, for GPUs), auto = fused on CUDA, kornia on the CPU.
    backend: Literal["auto", "kornia", "fused"] = "auto"


class PretrainConfig(_Section):
    """SimCLR pretraining of the feature extractor F (Eq. 1)."""

    # resnet18: CIFAR stem (3x3 stride-1 conv, no max-pool) for 32 px images; resnet18_imagenet_stem:
    # torchvision's 7x7 stride-2 conv and max-pool, for 96 px STL-10 (as SCAN does).
    backbone: Literal["small_cnn", "resnet18", "resnet18_imagenet_stem"] = "small_cnn"
    width: int = Field(32, ge=4, le=512, description="small_cnn: channels of its first block")
    # small_cnn's readout of its last feature map: "flatten" keeps where each feature is (one
    # weight per position), "pool" averages over positions (global average pooling). "pool"
    # was chosen on digits by K-means stability, without labels (README, "Label-free choices").
    readout: Literal["flatten", "pool"] = "pool"
    projection_dim: int = Field(64, ge=2)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=2)
    # τ of Eq. 1; 1.0 chosen on digits by K-means stability (README, "Label-free choices").
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    optimizer: OptimizerConfig = OptimizerConfig()
    augment: AugmentConfig = AugmentConfig()


class PseudolabelConfig(_Section):
    """K-means pseudo labels on F's features, then the cluster head C trained with CE (Eq. 2)."""

    n_clusters: int = Field(10, ge=2)
    kmeans_n_init: int = Field(10, ge=1)
    # Where K-means runs: "backbone", F(x) (the paper's 3.2.2), or "projection", SimCLR's
    # g(F(x)), the space Eq. 1 compares in; "projection" chosen on digits by K-means
    # stability (README, "Label-free choices"). The cluster head always reads F(x).
    kmeans_space: Literal["backbone", "projection"] = "projection"
    head_hidden: int = Field(512, ge=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0.0, le=10.0)


class DiffusionConfig(_Section):
    """The class-conditional DDPM G (Eq. 3-6) and how its images are drawn."""

    # U-Net: channels per resolution level and residual blocks per level (diffusers
    # UNet2DModel). Paper 4.1: 16 residual blocks of two convs with dropout; the CPU
    # default is smaller (3 levels x 1 block: 11 residual blocks in all).
    block_channels: tuple[int, ...] = Field((32, 64, 64), min_length=1, max_length=6)
    layers_per_block: int = Field(1, ge=1, le=4)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    activation: Literal["silu", "relu"] = "silu"
    timesteps: int = Field(1000, ge=2, description="T of the forward process")
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)
    epochs: int = Field(80, ge=1, description="paper 4.1: about 300")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-4, gt=0.0, le=1.0, description="paper 4.1: Adam 2e-4")
    # Clip the predicted x_0 to [-1, 1] inside each reverse step (Ho et al.'s code does;
    # Eq. 5 as printed does not). It changes a step only when x_0's estimate leaves [-1, 1].
    clip_sample: bool = True
    sampler: Literal["ddim", "ddpm"] = "ddim"
    sample_steps: int = Field(25, ge=1, description="DDIM steps; ddpm always uses all T")
    grid_per_cluster: int = Field(10, ge=1, le=64)

    def training_settings(self) -> dict[str, Any]:
        """The keys that shape the trained G (the `diffusion` stage reads only these)."""
        return self.model_dump(exclude=set(SAMPLING_KEYS))

    @model_validator(mode="after")
    def _cross_checks(self) -> DiffusionConfig:
        if self.beta_end <= self.beta_start:
            raise ValueError(f"diffusion.beta_end ({self.beta_end}) must exceed diffusion.beta_start ({self.beta_start})")
        if self.sampler == "ddim" and self.sample_steps > self.timesteps:
            raise ValueError(
                f"diffusion.sample_steps ({self.sample_steps}) must not exceed diffusion.timesteps ({self.timesteps})"
            )
        if any(c < 1 for c in self.block_channels):
            raise ValueError(f"diffusion.block_channels must be positive, got {list(self.block_channels)}")
        return self


# The forward process (Eq. 3): every stage that trains or samples G reads it.
SCHEDULE_KEYS = ("timesteps", "beta_start", "beta_end")
# How images are drawn from a trained G: they never change what the `diffusion` stage trains.
SAMPLING_KEYS = ("clip_sample", "sampler", "sample_steps", "grid_per_cluster")
# What a GCC round reads of `diffusion`: the schedule and batch size to fine-tune G (Eq. 6)
# and how its bank and held-out set are drawn (no grid). G's architecture is in its checkpoint.
ROUND_DIFFUSION_KEYS = (*SCHEDULE_KEYS, "batch_size", "clip_sample", "sampler", "sample_steps")


class RoundConfig(_Section):
    init: str = Field(..., description="pseudolabel, or the name of the round this one starts from")


class LossWeightsConfig(_Section):
    """Weights of Eq. 12; 0 removes a term (the GCC-d / GCC-cwm / GCC-ml ablations)."""

    d: float = Field(1.0, ge=0.0)
    cwm: float = Field(1.0, ge=0.0)
    ml: float = Field(1.0, ge=0.0)


# Round outputs live in results/<round name>/, beside the stage folders.
RESERVED_ROUND_NAMES = {"pretrain", "pseudolabel", "diffusion", "evaluate", "figures", "data", "rounds"}


class GCCConfig(_Section):
    """Stage II: the collaborative rounds of 3.4 (Eq. 8-12 for F and C, Eq. 6 for G)."""

    # Each round names its predecessor; results/<name>/ holds its F, C and G.
    rounds: dict[str, RoundConfig] = Field(
        default_factory=lambda: {
            "r1": RoundConfig(init="pseudolabel"),
            "r2": RoundConfig(init="r1"),
            "r3": RoundConfig(init="r2"),
        }
    )
    # The last round of the chain: `evaluate` depends on it (dvc.yaml cannot list the rounds).
    final_round: str = "r3"
    # Which round is the GCC result (evaluation.select_round): "heldout_stop", the first round
    # whose successor's held-out agreement is not higher (stop when it stops rising; label-free,
    # declared 2026-12-04), or "last", the last round of the chain.
    select_round: Literal["heldout_stop", "last"] = "heldout_stop"
    cluster_epochs: int = Field(5, ge=1, description="paper 4.1: 5")
    diffusion_epochs: int = Field(2, ge=0, description="paper 4.1: 2")
    # Generated images drawn for F and C's step; null = as many as the train split (then with
    # bank_refresh: epoch every real image meets a generated image used once, the paper's
    # fresh batch per real batch).
    bank_size: int | None = Field(None, ge=1, description="generated images per bank")
    # "round": one bank, drawn when the round starts, reused every epoch; "epoch": a fresh
    # bank from the same frozen G at the start of every epoch (the paper's fresh batches).
    bank_refresh: Literal["round", "epoch"] = "epoch"
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="Adam for F and C (paper 4.1)")
    diffusion_lr: float = Field(2e-4, gt=0.0, le=1.0, description="Adam for G (paper 4.1)")
    weights: LossWeightsConfig = LossWeightsConfig()
    # Gaussian kernel bandwidth of L_d: "median" (median pairwise distance in each batch) or a number.
    bandwidth: Literal["median"] | float = "median"
    # Which generated images join a real batch. "predicted": one bank image of each real
    # image's predicted cluster (the paper: the fake batch is generated from the real batch's
    # ŷ). "bank": a uniform draw from the round's bank, whose label mix is fixed when the round
    # starts, so the clusters taught on generated images do not follow the head's drifting
    # predictions (DESIGN.md §4).
    pairing: Literal["predicted", "bank"] = "predicted"
    # Estimator of L_d (Eq. 9): "unbiased" leaves out the pairs i = i of the within-set means,
    # so L_d is 0 in expectation when the real and generated features of a cluster follow one
    # distribution; "biased" keeps them (the V-statistic, with a floor > 0; earlier default).
    mmd_estimator: Literal["unbiased", "biased"] = "unbiased"
    # What L_ml (Eq. 11) compares: "softmax", the probabilities of C(F(x̃)) (DESIGN.md §4), or
    # "logits", C(F(x̃)) itself, as the paper's 3.2.2 defines p (see losses.calibration).
    ml_scores: Literal["softmax", "logits"] = "softmax"
    # How L_ml (Eq. 11) reduces over the generated batch: "sum", as printed (Eq. 9 and 10 are
    # means, Eq. 11 is not), or "mean" (this code's default before it was checked against Eq.
    # 11; it weighs L_ml B times less against L_d and L_cwm in F's gradient).
    ml_reduction: Literal["sum", "mean"] = "sum"
    # Stop a round whose predictions collapse: after each epoch, the cluster_balance of the
    # clusters predicted on the real images must stay at least this (0 turns the guard off).
    min_balance: float = Field(0.5, ge=0.0, lt=1.0, description="label-free collapse guard")

    @model_validator(mode="after")
    def _check_rounds(self) -> GCCConfig:
        if not self.rounds:
            raise ValueError("gcc.rounds must name at least one round")
        for name, item in self.rounds.items():
            if not name.isidentifier() or name in RESERVED_ROUND_NAMES:
                raise ValueError(
                    f"gcc.rounds: {name!r} is not allowed as a round name (use letters, digits, _; "
                    f"not one of {', '.join(sorted(RESERVED_ROUND_NAMES))})"
                )
            if item.init != "pseudolabel" and item.init not in self.rounds:
                raise ValueError(
                    f"gcc.rounds.{name}.init = {item.init!r}: must be pseudolabel or one of "
                    f"{', '.join(self.rounds)}"
                )
        chain = round_chain(self.rounds)
        if len(chain) != len(self.rounds):
            raise ValueError(
                "gcc.rounds must form one chain starting at init: pseudolabel, each round "
                f"followed by at most one other (found chain {' -> '.join(['pseudolabel', *chain])})"
            )
        if self.final_round != chain[-1]:
            raise ValueError(f"gcc.final_round = {self.final_round!r}: must be the last round of the chain, {chain[-1]!r}")
        if isinstance(self.bandwidth, float) and self.bandwidth <= 0:
            raise ValueError(f"gcc.bandwidth = {self.bandwidth}: must be 'median' or a positive number")
        return self


def round_chain(rounds: dict[str, RoundConfig]) -> list[str]:
    """Round names in execution order, following `init` links from pseudolabel."""
    followers: dict[str, list[str]] = {}
    for name, item in rounds.items():
        followers.setdefault(item.init, []).append(name)
    chain, current = [], "pseudolabel"
    while len(followers.get(current, [])) == 1 and len(chain) <= len(rounds):
        current = followers[current][0]
        chain.append(current)
    return chain


class FiguresConfig(_Section):
    """Fig. 3 (t-SNE of test features) and Fig. 4 (generated images by round)."""

    tsne_samples: int = Field(2000, ge=10, description="test images in the t-SNE (paper: 2,000)")
    tsne_perplexity: float = Field(30.0, gt=1.0, le=200.0)
    grid_per_cluster: int = Field(8, ge=1, le=32)


class CIConfig(_Section):
    """The CI metric gate (.ci/gate)."""

    metric_tolerance: float = Field(0.02, ge=0.0, le=1.0, description="largest allowed drop of ACC/NMI/ARI")


class EvaluateConfig(_Section):
    batch_size: int = Field(512, ge=1)
    pixel_kmeans_n_init: int = Field(10, ge=1)


class Params(_Section):
    base: BaseConfig = BaseConfig()
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    pseudolabel: PseudolabelConfig = PseudolabelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    gcc: GCCConfig = GCCConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    figures: FiguresConfig = FiguresConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    ci: CIConfig = CIConfig()

    def cluster_counts(self) -> dict[str, int]:
        """K of every model the run trains, by the key that sets it: GCC's and each baseline's
        in baselines.run (null there = pseudolabel.n_clusters)."""
        k = self.pseudolabel.n_clusters
        counts = {"pseudolabel.n_clusters": k}
        for name in self.baselines.run:
            counts[f"baselines.{name}.n_clusters"] = getattr(self.baselines, name).resolved_n_clusters(k)
        return counts

    @model_validator(mode="after")
    def _cross_section_checks(self) -> Params:
        """Rules that tie sections together, so that `gccluster check` and the first stage catch
        them, not a stage hours later."""
        data, pretrain, k = self.data, self.pretrain, self.pseudolabel.n_clusters
        folder = data.dataset == IMAGE_FOLDER
        channels = data.resolved_channels()
        if self.gcc.bank_size is not None and self.gcc.bank_size < k:
            raise ValueError(
                f"gcc.bank_size ({self.gcc.bank_size}) must be at least pseudolabel.n_clusters "
                f"({k}): every cluster needs generated images"
            )
        size = data.image_size or DATASETS[data.dataset].native_size
        if pretrain.backbone == "small_cnn" and size % 4:
            raise ValueError(
                f"data.image_size = {size} (data.dataset {data.dataset}{'' if data.image_size else ', native'}) "
                "does not suit pretrain.backbone = small_cnn: it needs a size divisible by 4 (two 2x poolings)"
            )
        if pretrain.augment.policy == "simclr" and channels != 3:
            raise ValueError(
                f"pretrain.augment.policy = simclr needs RGB images (colour jitter, random grayscale); "
                f"{data.dataset} is grayscale{' (data.channels = 1)' if folder else ''}: use grayscale, digits or auto"
            )
        if data.imbalance_remove is not None and len(data.imbalance_remove) != DATASETS[data.dataset].n_classes:
            raise ValueError(
                f"data.imbalance_remove has {len(data.imbalance_remove)} fractions; {data.dataset} has "
                f"{DATASETS[data.dataset].n_classes} classes"
            )
        self.baselines.check_data(size, channels, data.dataset)
        n_train = max_train_images(data.dataset, data.protocol, data.test_fraction, data.imbalance_remove)
        if n_train is not None:  # an image folder is counted by the data stage (data.prepare)
            for key, value in self.cluster_counts().items():
                if value > n_train:
                    raise ValueError(
                        f"{key} = {value} exceeds the {n_train} train images of {data.dataset} "
                        "(K-means needs at least one image per cluster)"
                    )
        return self


def validate_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; raise `UserError` naming the first bad key."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise UserError(_describe_first_error(err, raw, source)) from None


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    """Read and validate `params.yaml`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"params file {path} not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    return validate_params(raw or {}, source=str(path))


def _describe_first_error(err: ValidationError, raw: dict, source: str) -> str:
    errors = err.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    if first["type"] == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "the top level"
        allowed = _allowed_keys(loc[:-1])
        return f"{source}: unknown key {'.'.join(loc)} (allowed in {parent}: {', '.join(allowed)})"
    if first["type"] == "missing":
        return f"{source}: {'.'.join(loc)} is required"
    if first["type"] == "value_error":
        # Our own cross-field checks: their messages name the keys involved.
        return f"{source}: {first['msg'].removeprefix('Value error, ')}"
    # Unions (e.g. "median" or a number) add a tag to the location: keep the real keys.
    keys = _existing_prefix(raw, loc)
    messages = [first["msg"]]
    if len(keys) < len(loc):
        messages = list(dict.fromkeys(e["msg"] for e in errors if [str(p) for p in e["loc"]][: len(keys)] == keys))
    return f"{source}: {'.'.join(keys)} = {_lookup(raw, keys)!r}: {' or '.join(messages)}"


def _existing_prefix(raw: Any, loc: list[str]) -> list[str]:
    node, keys = raw, []
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            keys.append(part)
        else:
            break
    return keys


def _lookup(raw: Any, loc: list[str]) -> Any:
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Params
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def params_to_dict(params: Params) -> dict[str, Any]:
    return params.model_dump(mode="json")

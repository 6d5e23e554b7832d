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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gccluster.errors import UserError

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100_20", "stl10")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseConfig(_Section):
    """Settings shared by all stages."""

    seed: int = Field(0, ge=0, description="seeds Python, NumPy and torch in every stage")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_root: str = Field("data/raw", description="where torchvision downloads datasets")


class DataConfig(_Section):
    """Which dataset, from where, and how it is split (paper 4.1)."""

    dataset: Literal["digits", "mnist", "fashion_mnist", "cifar10", "cifar100_20", "stl10"] = "digits"
    # A folder holding the dataset's official files; null = look in data_root and the
    # system folders (Debian's dataset-fashion-mnist), then download if allowed.
    local_dir: str | None = None
    download: bool = True
    # Side of the square images the pipeline sees; null = the dataset's native size.
    # digits are 8x8: 16 leaves room for crops and two poolings in the small CNN.
    image_size: int | None = Field(16, ge=8, le=512)
    # "train": fit on the train split, report on the test split (GCC, SCAN).
    # "train+test": fit and report on both splits together (DCCS and older papers).
    protocol: Literal["train", "train+test"] = "train"
    # digits ships unsplit: a stratified split with its own seed, so changing base.seed
    # does not change the data.
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0)
    stl10_unlabeled: bool = Field(False, description="add STL-10's 100k unlabelled images to train")

    @model_validator(mode="after")
    def _cross_checks(self) -> DataConfig:
        if self.stl10_unlabeled and self.dataset != "stl10":
            raise ValueError(
                f"data.stl10_unlabeled = true needs data.dataset = stl10, not {self.dataset}"
            )
        return self


class OptimizerConfig(_Section):
    name: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")


class AugmentConfig(_Section):
    """SimCLR view augmentations; `auto` picks the policy that suits the dataset."""

    policy: Literal["auto", "digits", "grayscale", "simclr"] = "auto"
    # Lower bound of the random-resized-crop area; null = the policy's own default.
    crop_min_scale: float | None = Field(None, gt=0.0, le=1.0)


class PretrainConfig(_Section):
    """SimCLR pretraining of the feature extractor F (Eq. 1)."""

    backbone: Literal["small_cnn", "resnet18"] = "small_cnn"
    width: int = Field(32, ge=4, le=512, description="small_cnn: channels of its first block")
    projection_dim: int = Field(64, ge=2)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=2)
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    optimizer: OptimizerConfig = OptimizerConfig()
    augment: AugmentConfig = AugmentConfig()


class PseudolabelConfig(_Section):
    """K-means pseudo labels on F's features, then the cluster head C trained with CE (Eq. 2)."""

    n_clusters: int = Field(10, ge=2)
    kmeans_n_init: int = Field(10, ge=1)
    head_hidden: int = Field(512, ge=1)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0.0, le=10.0)


class EvaluateConfig(_Section):
    batch_size: int = Field(512, ge=1)
    pixel_kmeans_n_init: int = Field(10, ge=1)


class Params(_Section):
    base: BaseConfig = BaseConfig()
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    pseudolabel: PseudolabelConfig = PseudolabelConfig()
    evaluate: EvaluateConfig = EvaluateConfig()


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
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "the top level"
        allowed = _allowed_keys(loc[:-1])
        return f"{source}: unknown key {key} (allowed in {parent}: {', '.join(allowed)})"
    if first["type"] == "missing":
        return f"{source}: {key} is required"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "value_error" and not loc:
        return f"{source}: {message}"
    value = _lookup(raw, loc)
    return f"{source}: {key} = {value!r}: {message}"


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

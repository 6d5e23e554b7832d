"""The `baselines` params section: which seed methods run, and each one's own section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gccluster.baselines.dccs.params import DCCSConfig
from gccluster.baselines.drc.params import DRCConfig
from gccluster.baselines.gatcluster.params import GATClusterConfig
from gccluster.baselines.precise.params import PreciseConfig
from gccluster.sections import Section

# Every registered method, in leaderboard order (baselines.registry holds their code).
METHOD_NAMES = ("dccs", "drc", "gatcluster", "precise")


class BaselinesConfig(Section):
    """`run`: the methods `dvc repro` trains (dvc.yaml's `baseline` foreach); one section per
    method, read only by that method's stage (`baseline@<name>`)."""

    run: tuple[Literal["dccs", "drc", "gatcluster", "precise"], ...] = Field(
        ("dccs", "drc", "gatcluster", "precise"), description="methods the pipeline trains")
    dccs: DCCSConfig = DCCSConfig()
    drc: DRCConfig = DRCConfig()
    gatcluster: GATClusterConfig = GATClusterConfig()
    precise: PreciseConfig = PreciseConfig()

    @model_validator(mode="after")
    def _check_run(self) -> BaselinesConfig:
        if len(set(self.run)) != len(self.run):
            raise ValueError(f"baselines.run = {list(self.run)}: each method at most once")
        return self

    def check_data(self, image_size: int, channels: int, dataset: str) -> None:
        """Raise ValueError naming the key when a method in `run` cannot take the data."""
        for name in self.run:
            getattr(self, name).check_data(image_size, channels, dataset)

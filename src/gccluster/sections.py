"""The base of every typed params section (config.py and each baseline's params module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A params section: unknown keys are errors (a typo must not fall back to a default),
    and values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BaselineSection(Section):
    """A seed method's section (`baselines.<name>`): what every method shares."""

    # K: every seed method takes the number of clusters as given. null = the run's K,
    # pseudolabel.n_clusters (GCC's), so that one key sets it for every method.
    n_clusters: int | None = Field(None, ge=2, description="K; null = pseudolabel.n_clusters")

    def resolved_n_clusters(self, run_k: int) -> int:
        return run_k if self.n_clusters is None else self.n_clusters

"""The base of every typed params section (config.py and each baseline's params module)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A params section: unknown keys are errors (a typo must not fall back to a default),
    and values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

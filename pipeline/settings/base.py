"""What every settings group shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A settings group: immutable, and an unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

"""The base of every recipe section: a pydantic model that rejects unknown keys and validates assignments.

Each floor of the package owns the settings it reads (``transforms`` its normalisation and augmentation, each task
its own section); :mod:`convscope.config` puts them together into the recipe.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

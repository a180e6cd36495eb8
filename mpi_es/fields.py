"""The vocabulary of config sections: the strict base model and the checked value types.

Algorithms and policy families define their own config sections with these; the config
package assembles them into the run's schema."""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class KeyedError(ValueError):
    """A cross-field error that belongs to one key rather than the section it sits in."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _whole_number(value: Any) -> Any:
    # YAML 1.1 reads 2.5e8 as a string and users write sizes that way; accept any whole number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_whole_number)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    def _changed(self, key: str) -> bool:
        """Did the config give this key a value other than its default? (A resolved config
        holds every key at its default: keys that mean nothing are refused only when changed.)"""
        return key in self.model_fields_set and \
            getattr(self, key) != type(self).model_fields[key].default

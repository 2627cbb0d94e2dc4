"""What every part of the config model shares: the base class (camelCase keys, unknown keys
refused, defaults validated) and the name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
DURATION = r"^(Never|\d+(s|m|h))$"


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # Built on first use, once for the whole tree, instead of once per class at import:
        # a fifth less of `sdctl validate`'s config time (bench/cli_start.py).
        defer_build=True,
    )

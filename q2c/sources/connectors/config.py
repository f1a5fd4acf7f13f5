"""Connector settings from the environment: where each API is and the token to use.

Tokens are read when a pull is built, never at import, and never logged. A missing token or
address stops the pull with the variable to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from q2c.sources.connectors.errors import ConfigurationError


@dataclass(frozen=True)
class EnvValue:
    name: str
    default: str | None = None
    what: str = ""


def read_env(
    provider: str, wanted: Mapping[str, EnvValue], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The values named in `wanted`, by field; a missing value without default is an error."""
    env = os.environ if env is None else env
    values, missing = {}, []
    for key, spec in wanted.items():
        value = (env.get(spec.name) or "").strip() or spec.default
        if value is None:
            missing.append(f"{spec.name} ({spec.what})" if spec.what else spec.name)
        else:
            values[key] = value
    if missing:
        raise ConfigurationError(
            provider, f"{provider} pull is not configured: set {', '.join(missing)}"
        )
    return values

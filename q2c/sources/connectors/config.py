"""Connector settings from the environment: where each API is and the token to use.

Tokens are read when a pull is built, never at import, and never logged. A missing token or
address stops the pull with the variable to set; so does a value with a line break or another
control character (it would end the HTTP header it goes into and start another), and a
token with a space or a character outside ASCII. The message names the variable, never the
value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from q2c.sources.connectors.errors import ConfigurationError


@dataclass(frozen=True)
class EnvValue:
    """One setting: its variable, its default, what it is, and whether it is a credential."""

    name: str
    default: str | None = None
    what: str = ""
    secret: bool = False


def _malformed(spec: EnvValue, value: str) -> str | None:
    """Why `value` cannot be used, in words that do not repeat it; None when it can."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a line break or another control character"
    if spec.secret and any(not 33 <= ord(c) <= 126 for c in value):
        return "contains a space or a character outside ASCII, which no token has"
    return None


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
            continue
        problem = _malformed(spec, value)
        if problem:
            raise ConfigurationError(
                provider, f"{provider} connection is not configured: {spec.name} {problem}; set it "
                "again, copied without them (the value is not shown)",
            )
        values[key] = value
    if missing:
        raise ConfigurationError(
            provider, f"{provider} connection is not configured: set {', '.join(missing)}"
        )
    return values

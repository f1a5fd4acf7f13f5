"""Resources built from q2c settings: the one place Dagster learns where things live."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from q2c.settings import Settings, load_settings
from q2c.sources.schema import SOURCES


class Q2CSettings(dg.ConfigurableResource):
    """q2c's settings, read when a step runs (environment and `q2c.yaml`), never at import.

    Each field overrides the matching setting for one deployment or test; empty means the
    value comes from the environment or the embedded default.
    """

    landing_dir: str = ""
    warehouse_path: str = ""
    documents_dir: str = ""
    outbox_dir: str = ""
    as_of: str = ""
    mail_channel: str = ""

    def load(self) -> Settings:
        settings = load_settings()
        overrides: dict[str, object] = {}
        for name in ("landing_dir", "warehouse_path", "documents_dir", "outbox_dir"):
            value = getattr(self, name)
            if value:
                overrides[name] = Path(value)
        if self.as_of:
            overrides["as_of"] = dt.date.fromisoformat(self.as_of)
        if self.mail_channel:
            overrides["mail_channel"] = self.mail_channel
        return settings.with_overrides(**overrides)


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment dbt runs with: the warehouse path its profile reads, telemetry off."""
    return {
        "Q2C_WAREHOUSE": str(settings.warehouse_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DO_NOT_TRACK": "1",
        # A step that builds part of the project (the seeds alone, say) runs only the tests
        # whose every parent it built, not a relationship test into a model not built yet.
        "DBT_INDIRECT_SELECTION": "cautious",
    }


def dbt_source_vars(settings: Settings) -> dict[str, bool]:
    """One dbt var per source, `q2c_<source>_enabled`: only enabled sources' models build."""
    return {f"q2c_{name}_enabled": name in settings.sources for name in SOURCES}


@contextmanager
def dbt_environment_applied(settings: Settings) -> Iterator[None]:
    """dagster-dbt starts dbt with this process's environment, so the profile values go there
    for the length of the dbt call, and the process gets its own values back afterwards: a
    later run in the same process (the UI's, a test's) must not build into this warehouse."""
    values = dbt_environment(settings)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

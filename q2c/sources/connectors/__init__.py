"""q2c's own pull connectors: provider APIs landed as raw tables in Fivetran's shape.

A team that does not run a loading tool pulls with these instead; they write the same files
the ingest step reads (`<landing>/<source>/<table>.csv`). Each pull is incremental by the
provider's updated-at cursor, committed to the ops store page by page, so a failed pull
resumes where it stopped. Credentials come from the environment (see each connector's
`from_env`); nothing logs them.

    from q2c.sources.connectors import pull
    report = pull("hubspot", settings)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from q2c.sources.connectors.base import Connector, PullReport
from q2c.sources.connectors.cursors import CursorStore
from q2c.sources.connectors.errors import (
    AuthError,
    ConfigurationError,
    ConnectorError,
    ProviderError,
    TransientError,
)
from q2c.sources.connectors.hubspot import HubSpotConnector
from q2c.sources.connectors.quickbooks import QuickBooksConnector
from q2c.sources.connectors.salesforce import SalesforceConnector
from q2c.sources.connectors.stripe import StripeConnector

__all__ = [
    "CONNECTORS", "AuthError", "ConfigurationError", "Connector", "ConnectorError",
    "CursorStore", "HubSpotConnector", "ProviderError", "PullReport", "QuickBooksConnector",
    "SalesforceConnector", "StripeConnector", "TransientError", "build_connector", "pull",
]

CONNECTORS: dict[str, type[Connector]] = {
    "hubspot": HubSpotConnector,
    "salesforce": SalesforceConnector,
    "stripe": StripeConnector,
    "quickbooks": QuickBooksConnector,
}


def build_connector(
    source: str, settings: Any, env: Mapping[str, str] | None = None, **options: Any
) -> Connector:
    """The connector for `source`, landing into `settings.landing_dir`, with its cursors in
    the ops store (`settings.ops_store`) and its credentials from `env` (the environment)."""
    if source not in CONNECTORS:
        raise ConfigurationError(
            source, f"q2c has no pull connector for {source!r}; it pulls from "
            f"{', '.join(CONNECTORS)}. Land other sources as files or with a loading tool.",
        )
    cursors = CursorStore(settings.ops_store)
    return CONNECTORS[source].from_env(
        settings.landing_dir, cursors, env=os.environ if env is None else env, **options
    )


def pull(
    source: str, settings: Any, streams: Iterable[str] | None = None,
    full_refresh: bool = False, env: Mapping[str, str] | None = None,
) -> PullReport:
    """Pull one source's streams into the landing folder from their committed cursors."""
    return build_connector(source, settings, env).pull(streams, full_refresh=full_refresh)

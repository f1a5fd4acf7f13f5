"""Content from the CMS and DAM systems a team already runs, governed like content/.

Each configured source (setting `cms_sources`, `Q2C_CMS_SOURCES`) has a connector reading
its connection from environment variables it defines (see each connector's `from_env`).
`q2c.content.cms.sync` records what the system holds in the CMS store; the registry turns
approved versions into content entries (`registry_merge`). Connector modules are imported
only when a source is used, so the registry loads without their dependencies.

    connector = build_cms_connector("wordpress", settings)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from q2c.content.cms.base import CmsConnector, CmsError

# Source name to (module, class): the systems q2c has a connector for.
CONNECTORS: dict[str, tuple[str, str]] = {
    "wordpress": ("q2c.content.cms.wordpress", "WordPressConnector"),
    "sitecore": ("q2c.content.cms.sitecore", "SitecoreConnector"),
    "aem": ("q2c.content.cms.aem", "AemConnector"),
}
CMS_SOURCES = tuple(CONNECTORS)


def build_cms_connector(
    name: str, settings: Any = None, env: Mapping[str, str] | None = None
) -> CmsConnector:
    """The connector of source `name`, its connection read from `env` (the environment).

    `settings` is passed on to connectors whose `from_env` takes it.

    Raises:
        CmsError: When q2c has no connector of that name.
    """
    if name not in CONNECTORS:
        raise CmsError(
            f"cms source {name!r} is unknown; q2c reads content from {', '.join(CONNECTORS)}. "
            "Fix Q2C_CMS_SOURCES (cms_sources in q2c.yaml)"
        )
    module_name, class_name = CONNECTORS[name]
    connector_class = getattr(importlib.import_module(module_name), class_name)
    options: dict[str, Any] = {"env": os.environ if env is None else env}
    if settings is not None and _takes(connector_class.from_env, "settings"):
        options["settings"] = settings
    return connector_class.from_env(**options)


def _takes(function: Any, parameter: str) -> bool:
    import inspect

    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["CMS_SOURCES", "CONNECTORS", "build_cms_connector"]

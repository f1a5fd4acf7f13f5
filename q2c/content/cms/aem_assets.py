"""AEM Assets as the repository of supporting documents and brand images.

The attachment rules look documents up by layout pattern (`accounts/{account_id}/contracts/
*.pdf`); here the pattern is a path below a DAM folder, the repository root. Listing a
folder is `GET /api/assets/<folder>.json` (the Assets HTTP API of AEM 6.5 and AEM as a
Cloud Service: Siren `entities`, paged with `offset` and `limit`), reading a file is
`GET <asset>/jcr:content/renditions/original`, the bytes as uploaded.

Each asset comes with its metadata as AEM keeps it: `dc:title`, `dc:format`, `dam:size`,
and the custom fields of the metadata schema, such as `q2c:account` and
`q2c:documentType`. An asset a reviewer rejected or asked changes for (`dam:status`
`rejected` or `changesRequested`) or whose `prism:expirationDate` has passed is left out,
as if it were not filed: it must not reach a customer.

Configured as a location (`Q2C_ATTACHMENTS`): `aem:/content/dam/q2c/documents` (or
`aem:///content/dam/...`) reads the author at Q2C_AEM_URL; `aem://host[:port]/content/dam/
...` names the host (https, or Q2C_AEM_URL's scheme when it names the same host). The
credentials are those of the connector: Q2C_AEM_TOKEN, or Q2C_AEM_USER and
Q2C_AEM_PASSWORD.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

from q2c.attachments.repository import (
    DocumentRef,
    DocumentRepository,
    RepositoryDocument,
    RepositoryError,
    _matches,
    _split,
)
from q2c.content.cms.aem import (
    DAM_ROOT,
    MAX_PAGE,
    AemHttpClient,
    aem_client,
    assets_api_path,
    parse_time,
)
from q2c.content.cms.base import CmsError
from q2c.sources.connectors.errors import ConnectorError, ProviderError

log = logging.getLogger(__name__)

HIDDEN_STATUSES = frozenset({"rejected", "changesrequested"})


@dataclass(frozen=True)
class AemDocumentRef(DocumentRef):
    """A file in AEM Assets, with the asset's metadata as the listing gave it."""

    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class AemRepositoryDocument(RepositoryDocument):
    """A supporting document read from AEM Assets, with the asset's metadata."""

    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return str(self.metadata.get("dc:title") or self.name)


class AemAssetsRepository(DocumentRepository):
    """A DAM folder of AEM laid out as the attachment rules' patterns say.

    Args:
        client: The AEM instance (`aem_client`).
        root: The DAM folder that patterns are relative to (`/content/dam/q2c/documents`).
        clock: The time now (UTC), for expiration dates.
    """

    def __init__(self, client: AemHttpClient, root: str,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        root = "/" + root.strip().strip("/")
        if not (root + "/").startswith(DAM_ROOT) or root + "/" == DAM_ROOT or ".." in root:
            raise CmsError(f"AEM Assets repository {root!r} must be a folder below {DAM_ROOT}")
        self.client = client
        self.root = root
        self.now = clock or (lambda: dt.datetime.now(dt.UTC))

    def __repr__(self) -> str:
        return f"AemAssetsRepository({self._url(self.root)!r})"

    def describe(self, pattern: str) -> str:
        return self._url(f"{self.root}/{pattern}")

    def list(self, pattern: str) -> list[DocumentRef]:
        folder, glob = _split(pattern)
        base = f"{self.root}/{folder}" if folder else self.root
        try:
            entities = list(self._entities(base))
        except ProviderError as exc:
            if exc.status not in (404, 410):
                raise self._error(f"{base} could not be listed", exc) from exc
            self._check_root()
            return []
        except ConnectorError as exc:
            raise self._error(f"{base} could not be listed", exc) from exc
        found = []
        for entity in entities:
            props = entity.get("properties") or {}
            name = str(props.get("name") or "")
            if "assets/asset" not in (entity.get("class") or []) or not _matches(name, glob):
                continue
            metadata = dict(props.get("metadata") or {})
            relative = f"{folder}/{name}" if folder else name
            why = self._withheld(metadata)
            if why:
                log.info("AEM Assets: %s is left out: %s", self.describe(relative), why)
                continue
            found.append(AemDocumentRef(relative, _size(metadata), metadata))
        return sorted(found, key=lambda ref: ref.path)

    def read(self, ref: DocumentRef) -> RepositoryDocument:
        """The original rendition of a file `list` returned (or named by its path), with the
        asset's metadata; an asset withheld by review or expiry is refused."""
        _split(ref.path)
        path = f"{self.root}/{ref.path}"
        rendition = quote(path.lstrip("/"), safe="/") + "/jcr:content/renditions/original"
        try:
            metadata = (ref.metadata if isinstance(ref, AemDocumentRef)
                        else self._metadata(path))
            why = self._withheld(metadata)
            if why:
                raise RepositoryError(f"AEM Assets: {self._url(path)} is withheld: {why}")
            reply = self.client.get_bytes(rendition)
        except ConnectorError as exc:
            raise self._error(f"{path} could not be read", exc) from exc
        content = reply.data if isinstance(reply.data, bytes) else b""
        document = AemRepositoryDocument.of(ref.name, ref.path, content, self._url(path))
        return replace(document, metadata=dict(metadata))

    def read_path(self, path: str) -> AemRepositoryDocument:
        """One file by its path below the root (a theme's logo: `brand/acme/logo.png`)."""
        document = self.read(DocumentRef(path, 0))
        assert isinstance(document, AemRepositoryDocument)
        return document

    # -- AEM ------------------------------------------------------------------------------

    def _entities(self, folder: str) -> Iterator[Mapping[str, Any]]:
        """The children of a DAM folder, page by page (`srn:paging`, `next` link)."""
        offset = 0
        while True:
            reply = self.client.get(assets_api_path(folder), {"offset": offset, "limit": MAX_PAGE})
            data = reply.data if isinstance(reply.data, dict) else {}
            if "assets/folder" not in (data.get("class") or []):
                raise RepositoryError(f"{self._url(folder)} is not a folder of AEM Assets")
            entities = [e for e in data.get("entities") or [] if isinstance(e, dict)]
            yield from entities
            offset += len(entities)
            paging = (data.get("properties") or {}).get("srn:paging") or {}
            more = any("next" in (link.get("rel") or []) for link in data.get("links") or [])
            if not entities or not (more or offset < int(paging.get("total") or 0)):
                return

    def _metadata(self, path: str) -> Mapping[str, Any]:
        data = self.client.get(assets_api_path(path)).data
        props = data.get("properties") if isinstance(data, dict) else None
        return (props or {}).get("metadata") or {}

    def _check_root(self) -> None:
        try:
            self.client.get(assets_api_path(self.root), {"limit": 1})
        except ConnectorError as exc:
            raise self._error(
                f"the repository root {self.root} could not be read; create the folder or "
                "point Q2C_ATTACHMENTS at the DAM folder holding the documents", exc) from exc

    def _withheld(self, metadata: Mapping[str, Any]) -> str | None:
        status = str(metadata.get("dam:status") or "")
        if status.lower() in HIDDEN_STATUSES:
            return f"its review status is {status}"
        expires = parse_time(metadata.get("prism:expirationDate"))
        if expires is not None and expires <= self.now():
            return f"it expired on {expires.isoformat()}"
        return None

    def _url(self, path: str) -> str:
        return self.client.base_url.rstrip("/") + path

    def _error(self, what: str, exc: Exception) -> RepositoryError:
        return RepositoryError(f"AEM Assets: {what} ({exc})")


def open_aem_repository(location: str, env: Mapping[str, str] | None = None,
                        **client_options: Any) -> AemAssetsRepository:
    """The repository an `aem:` location names; see the module docstring.

    Raises:
        RepositoryError: The location or the credentials are not usable.
    """
    env = os.environ if env is None else env
    parts = urlsplit(location)
    if parts.scheme != "aem" or not parts.path.startswith(DAM_ROOT):
        raise RepositoryError(f"attachment repository {location!r}: an AEM location is "
                              "aem:/content/dam/<folder> or aem://<host>/content/dam/<folder>")
    configured = env.get("Q2C_AEM_URL", "").strip()
    if parts.netloc:
        scheme = "https"
        if configured and urlsplit(configured).netloc == parts.netloc:
            scheme = urlsplit(configured).scheme
        url = f"{scheme}://{parts.netloc}"
    elif configured:
        url = configured
    else:
        raise RepositoryError(f"attachment repository {location!r} names no host: set "
                              "Q2C_AEM_URL or write aem://<host>/content/dam/<folder>")
    try:
        return AemAssetsRepository(aem_client(url, env, **client_options), parts.path)
    except CmsError as exc:
        raise RepositoryError(f"attachment repository {location!r}: {exc}") from exc


def _size(metadata: Mapping[str, Any]) -> int:
    try:
        return int(metadata.get("dam:size") or 0)
    except (TypeError, ValueError):
        return 0

"""The registry of governed content in `content/`: templates, brand themes and label texts.

`content/registry.yaml` lists every version of every content item with its status, who
approved it and when, the date it takes effect and the sha256 of each of its files. An
approved version never changes; a change is a new version with a new folder. The registry
checks this on every read: an approved file whose bytes no longer match its recorded sha256
stops the caller instead of reaching a customer.

Templates render in a sandboxed Jinja environment that loads only files registered here,
with autoescaping on for HTML, so a customer name like `<script>` prints as text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from q2c.content.formatting import FILTERS
from q2c.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

DEFAULT_CONTENT_DIR = PROJECT_ROOT / "content"
REGISTRY_FILE = "registry.yaml"

STATUSES = ("draft", "approved", "retired")
KINDS = ("template", "theme", "texts")
_IMMUTABLE_STATUSES = ("approved", "retired")
_REQUIRED_FIELDS = ("id", "version", "status", "kind", "path", "effective_from", "sha256")
_HTML_SUFFIXES = (".html", ".htm", ".xml", ".svg")


class ContentError(Exception):
    """Base class of every content registry error."""


class ContentRegistryError(ContentError):
    """`registry.yaml` is unreadable or an entry in it is incomplete or inconsistent."""


class ContentNotFoundError(ContentError, LookupError):
    """No version of a content id has the wanted status and is effective on the date."""


class ContentIntegrityError(ContentError):
    """A file of an approved (or retired) version no longer matches its recorded sha256."""


@dataclass(frozen=True)
class ContentEntry:
    """One version of one content item, as recorded in `registry.yaml`.

    Attributes:
        id: Stable name of the item (`invoice`, `default`, `invoice_labels`).
        version: Integer version; a higher number is newer.
        status: `draft`, `approved` or `retired`.
        kind: `template`, `theme` or `texts`.
        path: Folder of this version, relative to the content root.
        sha256: File name (relative to `path`) to its recorded sha256.
        main: The file a caller renders or reads first (the template, the stylesheet).
        effective_from: First date on which the version may be used.
        approved_by: Who approved it (None for drafts).
        approved_at: When it was approved (None for drafts).
        description: What the item is for, for content owners.
    """

    id: str
    version: int
    status: str
    kind: str
    path: str
    sha256: Mapping[str, str]
    main: str
    effective_from: dt.date
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    description: str = ""
    root: Path = field(default=DEFAULT_CONTENT_DIR, compare=False, repr=False)

    @property
    def ref(self) -> str:
        """`id@vN`, the short form recorded on rendered documents."""
        return f"{self.id}@v{self.version}"

    @property
    def folder(self) -> Path:
        return self.root / self.path

    def file_name(self, name: str | None = None) -> str:
        """The template name of a file of this entry, relative to the content root."""
        return str(PurePosixPath(self.path) / (name or self.main))

    def file_path(self, name: str | None = None) -> Path:
        return self.folder / (name or self.main)

    def read_text(self, name: str | None = None) -> str:
        return self.file_path(name).read_text(encoding="utf-8")

    def read_yaml(self, name: str | None = None) -> dict:
        return yaml.safe_load(self.read_text(name)) or {}


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ContentRegistry:
    """The parsed `registry.yaml` of one content folder, with integrity checks.

    Use `load_registry()` to build one. `get()` resolves an id to the version in force;
    `environment` is the sandboxed Jinja environment for the templates.
    """

    def __init__(self, root: Path, entries: list[ContentEntry]):
        self.root = Path(root).resolve()
        self.entries = entries
        self._yaml_cache: dict[tuple[str, str], dict] = {}
        self._by_file = {entry.file_name(name): entry for entry in entries for name in entry.sha256}
        self.environment = build_environment(self)

    def versions(self, content_id: str) -> list[ContentEntry]:
        """All registered versions of an id, oldest first."""
        return sorted(
            (entry for entry in self.entries if entry.id == content_id),
            key=lambda entry: entry.version,
        )

    def get(
        self, content_id: str, status: str = "approved", on: dt.date | None = None
    ) -> ContentEntry:
        """Return the newest version of `content_id` with `status` in effect on `on`.

        Args:
            content_id: The content id, for example `invoice`.
            status: The status a version must have; production uses `approved` only.
            on: The date the content is used on; today (UTC) when omitted.

        Raises:
            ContentNotFoundError: When no version has that status and is effective.
            ContentIntegrityError: When a file of the chosen approved version changed.
        """
        if status not in STATUSES:
            raise ValueError(f"status `{status}` is not one of {', '.join(STATUSES)}")
        on = on or dt.datetime.now(dt.UTC).date()
        candidates = [
            entry
            for entry in self.versions(content_id)
            if entry.status == status and entry.effective_from <= on
        ]
        if not candidates:
            known = ", ".join(
                f"v{e.version} {e.status} from {e.effective_from}"
                for e in self.versions(content_id)
            )
            raise ContentNotFoundError(
                f"no {status} version of content `{content_id}` is effective on {on} "
                f"(registered: {known or 'none'}); add or approve one in "
                f"{self.root / REGISTRY_FILE}"
            )
        entry = candidates[-1]
        self.verify(entry)
        return entry

    def get_preview(self, content_id: str, on: dt.date | None = None) -> ContentEntry:
        """The newest draft of `content_id` if one exists, else the approved version.

        Drafts are for watermarked previews only; documents sent to customers use `get()`.
        """
        try:
            return self.get(content_id, status="draft", on=on)
        except ContentNotFoundError:
            return self.get(content_id, on=on)

    def verify(self, entry: ContentEntry) -> None:
        """Check every file of an approved or retired entry against its recorded sha256.

        The files are small, so they are hashed again on every call: a file changed while a
        worker runs is caught at the next document. Drafts are work in progress and are
        not checked.
        """
        if entry.status not in _IMMUTABLE_STATUSES:
            return
        for name, expected in entry.sha256.items():
            path = entry.file_path(name)
            try:
                actual = file_sha256(path)
            except FileNotFoundError as exc:
                raise ContentIntegrityError(
                    f"file `{name}` of {entry.status} content {entry.ref} is missing at "
                    f"{path}; restore it from version control"
                ) from exc
            if actual != expected:
                newest = max((e.version for e in self.versions(entry.id)), default=entry.version)
                next_version = newest + 1
                raise ContentIntegrityError(
                    f"file `{name}` of {entry.status} content {entry.ref} changed after "
                    f"approval (sha256 {actual[:12]}…, registry says {expected[:12]}…). "
                    f"Approved content never changes: restore the file and put the change "
                    f"in a new version (v{next_version}) of `{entry.id}` in "
                    f"{self.root / REGISTRY_FILE}"
                )

    def verify_all(self) -> None:
        """Verify every approved and retired entry, for example as a check before a release."""
        for entry in self.entries:
            self.verify(entry)

    def entry_for_file(self, name: str) -> ContentEntry | None:
        """The entry that registers a file given by its path relative to the content root."""
        return self._by_file.get(str(PurePosixPath(name)))

    def template(self, entry: ContentEntry, name: str | None = None):
        """The compiled Jinja template of a file of `entry` (its main file by default)."""
        self.verify(entry)
        return self.environment.get_template(entry.file_name(name))

    def labels(
        self,
        language: str,
        texts_id: str = "invoice_labels",
        on: dt.date | None = None,
        entry: ContentEntry | None = None,
    ) -> tuple[dict[str, str], ContentEntry]:
        """The label texts for `language`, completed from English where a key is missing.

        Returns:
            The labels and the texts entry they came from (to record its version).
        """
        entry = entry or self.get(texts_id, on=on)
        wanted = (language or "en").lower().replace("-", "_").split("_")[0]
        labels = {}
        for name in ("en.yaml", f"{wanted}.yaml"):
            if name in entry.sha256:
                labels.update(self.read_yaml(entry, name))
        return {str(key): str(value) for key, value in labels.items()}, entry

    def read_yaml(self, entry: ContentEntry, name: str | None = None) -> dict:
        """A YAML file of an entry, parsed once per process for approved and retired ones.

        Callers verify the entry first (`get()` does); its files cannot change afterwards
        without `verify()` failing, so the parsed copy stays true.
        """
        key = (entry.ref + ":" + entry.status, name or entry.main)
        if entry.status not in _IMMUTABLE_STATUSES:
            return entry.read_yaml(name)
        if key not in self._yaml_cache:
            self._yaml_cache[key] = entry.read_yaml(name)
        return self._yaml_cache[key]


class _RegistryLoader(BaseLoader):
    """A Jinja loader that serves only files registered in the content registry.

    Every template, include or import is looked up in the registry by its path relative to
    the content root and verified against its sha256 before Jinja sees it.
    """

    def __init__(self, registry: ContentRegistry):
        self.registry = registry

    def get_source(self, environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        entry = self.registry.entry_for_file(template)
        if entry is None:
            raise TemplateNotFound(
                f"{template} (only files listed in {REGISTRY_FILE} can be loaded)"
            )
        self.registry.verify(entry)
        path = self.registry.root / template
        source = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime_ns
        return source, str(path), lambda: path.stat().st_mtime_ns == mtime


def _autoescape(template_name: str | None) -> bool:
    """Escape HTML-like templates; leave plain-text ones (emails' text part) alone."""
    if template_name is None:
        return True
    return template_name.lower().endswith(_HTML_SUFFIXES)


def build_environment(registry: ContentRegistry) -> SandboxedEnvironment:
    """The sandboxed Jinja environment for governed templates.

    The sandbox keeps a template from reaching Python internals; `StrictUndefined` turns a
    misspelt variable into an error instead of a blank on a customer document. The filters
    of `q2c.content.formatting` format money, dates and numbers for the `locale` variable.
    """
    environment = SandboxedEnvironment(
        loader=_RegistryLoader(registry),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


def load_registry(content_dir: Path | None = None) -> ContentRegistry:
    """Read and check `registry.yaml` of a content folder (the repository's by default).

    Raises:
        ContentRegistryError: Naming the file, the entry and the field that is wrong.
    """
    root = Path(content_dir or DEFAULT_CONTENT_DIR).resolve()
    registry_path = root / REGISTRY_FILE
    try:
        data = yaml.safe_load(registry_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ContentRegistryError(f"content registry not found at {registry_path}") from exc
    except yaml.YAMLError as exc:
        raise ContentRegistryError(f"{registry_path} is not valid YAML: {exc}") from exc

    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list):
        raise ContentRegistryError(f"{registry_path}: top-level `entries` must be a list")
    entries = [
        _parse_entry(raw, index, registry_path, root)
        for index, raw in enumerate(raw_entries, start=1)
    ]
    _check_unique(entries, registry_path)
    log.debug("content registry %s loaded with %d entries", registry_path, len(entries))
    return ContentRegistry(root, entries)


def _parse_entry(raw: object, index: int, registry_path: Path, root: Path) -> ContentEntry:
    where = f"{registry_path}, entry {index}"
    if not isinstance(raw, dict):
        raise ContentRegistryError(f"{where}: an entry must be a mapping")
    where = f"{where} (`{raw.get('id', '?')}`)"
    for name in _REQUIRED_FIELDS:
        if raw.get(name) in (None, "", {}):
            raise ContentRegistryError(f"{where}: field `{name}` is missing")

    status, kind = str(raw["status"]), str(raw["kind"])
    if status not in STATUSES:
        raise ContentRegistryError(f"{where}: field `status` must be one of {STATUSES}")
    if kind not in KINDS:
        raise ContentRegistryError(f"{where}: field `kind` must be one of {KINDS}")
    if status in _IMMUTABLE_STATUSES and not (raw.get("approved_by") and raw.get("approved_at")):
        raise ContentRegistryError(
            f"{where}: a {status} entry needs `approved_by` and `approved_at`"
        )
    try:
        version = int(raw["version"])
        effective_from = _as_date(raw["effective_from"])
        approved_at = _as_datetime(raw["approved_at"]) if raw.get("approved_at") else None
    except (TypeError, ValueError) as exc:
        raise ContentRegistryError(f"{where}: {exc}") from exc

    hashes = raw["sha256"]
    if not isinstance(hashes, dict):
        raise ContentRegistryError(f"{where}: field `sha256` must map file names to hashes")
    path = str(PurePosixPath(str(raw["path"])))
    if path.startswith("/") or ".." in PurePosixPath(path).parts:
        raise ContentRegistryError(f"{where}: field `path` must stay inside {root}")
    main = str(raw.get("main") or next(iter(hashes)))
    if main not in hashes:
        raise ContentRegistryError(f"{where}: field `main` names `{main}`, not in `sha256`")

    return ContentEntry(
        id=str(raw["id"]),
        version=version,
        status=status,
        kind=kind,
        path=path,
        sha256={str(name): str(value) for name, value in hashes.items()},
        main=main,
        effective_from=effective_from,
        approved_by=raw.get("approved_by"),
        approved_at=approved_at,
        description=str(raw.get("description") or ""),
        root=root,
    )


def _check_unique(entries: list[ContentEntry], registry_path: Path) -> None:
    seen: set[tuple[str, int]] = set()
    for entry in entries:
        if (entry.id, entry.version) in seen:
            raise ContentRegistryError(
                f"{registry_path}: {entry.ref} is registered twice; give the new one the "
                "next version number"
            )
        seen.add((entry.id, entry.version))


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _as_datetime(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value))

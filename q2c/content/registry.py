"""The registry of governed content in `content/`: templates, themes, texts, blocks, legal texts.

`content/registry.yaml` lists every version of every content item with its status, who
approved it and when, the dates it is in effect, whom it is for (targeting) and the sha256
of each of its files. An approved version never changes; a change is a new version with a
new folder. The registry checks this on every read: an approved file whose bytes no longer
match its recorded sha256 stops the caller instead of reaching a customer.

Templates render in a sandboxed Jinja environment that loads only files registered here,
with autoescaping on for HTML, so a customer name like `<script>` prints as text.

Which version a document gets is decided in `q2c.content.selection`; this module only says
what is registered, what is in effect on a date, and whether its files are intact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
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
KINDS = ("template", "theme", "texts", "blocks", "legal")
TARGETING_FIELDS = ("segment", "country", "language", "brand", "channel")
CHANNELS = ("pdf", "email", "portal", "edi")
PLACEMENTS = ("top", "bottom")
FALLBACK_LANGUAGE = "en"
# Kinds whose files are one per language (`en.yaml`, `de.html`, `de-AT.txt`).
LANGUAGE_KINDS = ("texts", "blocks", "legal")
DEFAULT_TEXTS = ("invoice_labels",)
IMMUTABLE_STATUSES = ("approved", "retired")
_REQUIRED_FIELDS = ("id", "version", "status", "kind", "path", "effective_from")
_HTML_SUFFIXES = (".html", ".htm", ".xml", ".svg")
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
# A file is hashed again when its size or time changes; a time this recent is not trusted,
# since a change within the file system's clock tick would keep it (as git does).
_RACY_SECONDS = 2


class ContentError(Exception):
    """Base class of every content registry error."""


class ContentRegistryError(ContentError):
    """`registry.yaml` is unreadable or an entry in it is incomplete or inconsistent."""


class ContentNotFoundError(ContentError, LookupError):
    """No version of a content id has the wanted status and is effective on the date."""


class ContentIntegrityError(ContentError):
    """A file of an approved (or retired) version no longer matches its recorded sha256."""


def normalize_language(value: str | None) -> str:
    """`de_at`, `DE-at` or `de` as a language tag: `de-AT`, `de` (empty for nothing)."""
    text = str(value or "").strip().replace("_", "-")
    if not text:
        return ""
    language, _, region = text.partition("-")
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


@dataclass(frozen=True)
class Targeting:
    """Whom a content version is for; an empty field means any value.

    Values are normalized: segments, brands and channels lower case, countries upper case
    (ISO 3166 alpha-2), languages as tags (`de`, `de-AT`).
    """

    segment: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    brand: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()

    def constrained(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The fields that name values, in the order of `TARGETING_FIELDS`."""
        return tuple(
            (name, getattr(self, name)) for name in TARGETING_FIELDS if getattr(self, name)
        )

    def describe(self) -> str:
        """`segment=enterprise; country=DE|AT`, or `any` when nothing is targeted."""
        parts = [f"{name}={'|'.join(values)}" for name, values in self.constrained()]
        return "; ".join(parts) or "any"

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self.constrained()}


@dataclass(frozen=True)
class ContentOrigin:
    """Where a version came from when a CMS wrote it (`q2c.content.cms`).

    Attributes:
        source: The system (`wordpress`, `sitecore`, `aem`).
        external_id: The item's id there.
        locale: The item's language version there, as the system spells it.
        source_version: The system's own version of it.
        source_status: The system's state when q2c last fetched it.
        raw_sha256: SHA-256 of the body as the system returned it (the entry pins the
            sanitized body it was turned into).
    """

    source: str
    external_id: str
    locale: str
    source_version: str
    source_status: str
    raw_sha256: str

    def record(self, sha256: str | None) -> dict[str, str | None]:
        """What a document records of it: the system's item and version, and the hash."""
        return {
            "source": self.source,
            "external_id": self.external_id,
            "locale": self.locale,
            "source_version": self.source_version,
            "sha256": sha256,
        }


@dataclass(frozen=True)
class ContentEntry:
    """One version of one content item, as recorded in `registry.yaml`.

    Attributes:
        id: Stable name of the item (`invoice`, `default`, `invoice_labels`).
        version: Integer version; a higher number is newer.
        status: `draft`, `approved` or `retired`.
        kind: `template`, `theme`, `texts`, `blocks` (message blocks) or `legal`.
        path: Folder of this version, relative to the content root.
        sha256: File name (relative to `path`) to its recorded sha256; empty for a draft
            that has not recorded hashes.
        main: The file a caller renders or reads first (the template, the stylesheet).
        effective_from: First date on which the version may be used.
        effective_to: Last date on which it may be used (None: open-ended).
        approved_by: Who approved it (None for drafts).
        approved_at: When it was approved (None for drafts).
        description: What the item is for, for content owners.
        targeting: Whom it is for (segment, country, language, brand, channel).
        slot: The place it fills in a document; versions and variants of one slot compete
            in selection (a template fills its document, e.g. `invoice`; themes fill
            `theme`; a legal text fills its `case`; texts and blocks their own id).
        case: For legal texts, the legal case (`reverse_charge_eu`, `late_payment`, ...).
        placement: For message blocks, where the document prints it (`top`, `bottom`).
        texts: For templates, the label texts (slots) they use, merged in order.
        legal_cases: For templates, the legal cases they print; None means every case.
        files: Every file of the version (the keys of `sha256` once recorded).
        origin: The CMS item version it was made from; None for content in `content/`.
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
    effective_to: dt.date | None = None
    targeting: Targeting = field(default_factory=Targeting)
    slot: str = ""
    case: str | None = None
    placement: str | None = None
    texts: tuple[str, ...] = ()
    legal_cases: tuple[str, ...] | None = None
    files: tuple[str, ...] = ()
    origin: ContentOrigin | None = None

    @property
    def ref(self) -> str:
        """`id@vN`, the short form recorded on rendered documents."""
        return f"{self.id}@v{self.version}"

    @property
    def folder(self) -> Path:
        return self.root / self.path

    @property
    def is_draft(self) -> bool:
        return self.status == "draft"

    def is_effective(self, on: dt.date) -> bool:
        """Whether `on` lies between `effective_from` and `effective_to` (both included)."""
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def file_name(self, name: str | None = None) -> str:
        """The template name of a file of this entry, relative to the content root."""
        return str(PurePosixPath(self.path) / (name or self.main))

    def file_path(self, name: str | None = None) -> Path:
        return self.folder / (name or self.main)

    def read_text(self, name: str | None = None) -> str:
        return self.file_path(name).read_text(encoding="utf-8")

    def read_yaml(self, name: str | None = None) -> dict:
        return yaml.safe_load(self.read_text(name)) or {}

    def language_files(self) -> dict[str, str]:
        """Language tag to file name, for kinds with one file per language."""
        found = {}
        for name in self.files:
            stem = PurePosixPath(name).stem
            if "/" not in name and _LANGUAGE_TAG.match(normalize_language(stem)):
                found[normalize_language(stem)] = name
        return found


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class ContentRegistry:
    """The parsed `registry.yaml` of one content folder, with integrity checks.

    Use `load_registry()` to build one. `get()` resolves an id to the version in force,
    `in_force()` lists what selection may choose from on a date; `environment` is the
    sandboxed Jinja environment for the templates.
    """

    def __init__(self, root: Path, entries: list[ContentEntry]):
        self.root = Path(root).resolve()
        self.entries = entries
        self._yaml_cache: dict[tuple[str, str], dict] = {}
        self._text_cache: dict[tuple[str, str], str] = {}
        self._verified: dict[Path, tuple[int, int, int, str]] = {}
        self._by_file = {entry.file_name(name): entry for entry in entries for name in entry.files}
        self.environment = build_environment(self)

    def versions(self, content_id: str) -> list[ContentEntry]:
        """All registered versions of an id, oldest first."""
        return sorted(
            (entry for entry in self.entries if entry.id == content_id),
            key=lambda entry: entry.version,
        )

    def version(self, content_id: str, version: int) -> ContentEntry:
        """One registered version, whatever its status."""
        for entry in self.versions(content_id):
            if entry.version == version:
                return entry
        known = ", ".join(f"v{e.version} ({e.status})" for e in self.versions(content_id))
        raise ContentNotFoundError(
            f"content `{content_id}` has no version {version} in {self.root / REGISTRY_FILE} "
            f"(registered: {known or 'none'}); `q2c content list` shows every version"
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
            if entry.status == status and entry.is_effective(on)
        ]
        if not candidates:
            known = ", ".join(
                f"v{e.version} {e.status} from {e.effective_from}"
                + (f" to {e.effective_to}" if e.effective_to else "")
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

    def in_force(self, on: dt.date, preview: bool = False) -> list[ContentEntry]:
        """Per content id, the version selection may use on `on`.

        That is the newest approved version in effect; with `preview`, the newest draft in
        effect where one exists. A newer version replaces an older one of the same id
        completely, whatever their targeting; a variant for other readers is another id in
        the same slot. Retired versions are never in force, except a CMS version retired at
        a known time: it was approved until then, and its `effective_to` ends the day
        before its retirement.
        """
        chosen: dict[str, ContentEntry] = {}
        wanted = ("draft", "approved") if preview else ("approved",)
        for entry in sorted(self.entries, key=lambda e: (e.id, e.version)):
            if (entry.status in wanted or _retired_later(entry)) and entry.is_effective(on):
                current = chosen.get(entry.id)
                if current is None or _preference(entry, preview) >= _preference(current, preview):
                    chosen[entry.id] = entry
        return [chosen[content_id] for content_id in sorted(chosen)]

    def verify(self, entry: ContentEntry) -> None:
        """Check every file of an approved or retired entry against its recorded sha256.

        A file is hashed again whenever its size, inode or modification time differs from
        the last check, so a file changed while a worker runs is caught at the next
        document. Drafts are work in progress and are not checked.
        """
        if entry.status not in IMMUTABLE_STATUSES:
            return
        for name, expected in entry.sha256.items():
            path = entry.file_path(name)
            try:
                actual = self._sha256(path, expected)
            except FileNotFoundError as exc:
                raise ContentIntegrityError(
                    f"file `{name}` of {entry.status} content {entry.ref} is missing at "
                    f"{path}; restore it from version control"
                ) from exc
            if actual != expected:
                raise ContentIntegrityError(changed_file_message(self, entry, name, actual))

    def _sha256(self, path: Path, expected: str) -> str:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        known = self._verified.get(path)
        if known is not None and known[:3] == key and known[3] == expected:
            return expected
        actual = file_sha256(path)
        if actual == expected and stat.st_mtime_ns < time.time_ns() - _RACY_SECONDS * 10**9:
            self._verified[path] = (*key, actual)
        return actual

    def verify_all(self) -> None:
        """Verify every approved and retired entry, for example as a check before a release."""
        for entry in self.entries:
            self.verify(entry)

    def entry_for_file(self, name: str) -> ContentEntry | None:
        """The entry that registers a file given by its path relative to the content root."""
        return self._by_file.get(str(PurePosixPath(name)))

    def template(self, entry: ContentEntry, name: str | None = None):
        """The compiled Jinja template of a file of `entry` (its main file by default).

        A CMS version recorded after this registry was loaded (a render worker's registry
        is loaded once) is served too, once its body matches its pinned hash.
        """
        self.verify(entry)
        if entry.origin is not None:
            self._by_file.setdefault(entry.file_name(name), entry)
        return self.environment.get_template(entry.file_name(name))

    def labels(
        self,
        language: str,
        texts_id: str = "invoice_labels",
        on: dt.date | None = None,
        entry: ContentEntry | None = None,
    ) -> tuple[dict[str, str], ContentEntry]:
        """The label texts for `language`, completed along the chain `de-AT -> de -> en`.

        Returns:
            The labels and the texts entry they came from (to record its version).
        """
        entry = entry or self.get(texts_id, on=on)
        files = entry.language_files()
        labels: dict = {}
        for tag in reversed(language_chain(language)):
            if tag in files:
                labels.update(self.read_yaml(entry, files[tag]))
        return {str(key): str(value) for key, value in labels.items()}, entry

    def read_yaml(self, entry: ContentEntry, name: str | None = None) -> dict:
        """A YAML file of an entry, parsed once per process for approved and retired ones.

        Callers verify the entry first (`get()` does); its files cannot change afterwards
        without `verify()` failing, so the parsed copy stays true.
        """
        key = (entry.ref + ":" + entry.status, name or entry.main)
        if entry.status not in IMMUTABLE_STATUSES:
            return entry.read_yaml(name)
        if key not in self._yaml_cache:
            self._yaml_cache[key] = entry.read_yaml(name)
        return self._yaml_cache[key]

    def read_text(self, entry: ContentEntry, name: str | None = None) -> str:
        """A text file of an entry, read once per process for approved and retired ones."""
        key = (entry.ref + ":" + entry.status, name or entry.main)
        if entry.status not in IMMUTABLE_STATUSES:
            return entry.read_text(name)
        if key not in self._text_cache:
            self._text_cache[key] = entry.read_text(name)
        return self._text_cache[key]


def _retired_later(entry: ContentEntry) -> bool:
    """A CMS version retired at a recorded time, in force on the days before it."""
    return entry.status == "retired" and entry.origin is not None and (
        entry.effective_to is not None
    )


def _preference(entry: ContentEntry, preview: bool) -> tuple[int, int]:
    """Order of versions of one id: in a preview drafts beat approved ones, then newer wins."""
    return (int(preview and entry.is_draft), entry.version)


def language_chain(language: str | None) -> tuple[str, ...]:
    """The languages tried for a file, in order: `de-AT -> de -> en`.

    A region tag falls back to its language, and every language falls back to English, the
    one language every text, block and legal text must have.
    """
    tag = normalize_language(language) or FALLBACK_LANGUAGE
    chain = [tag]
    base = tag.split("-")[0]
    if base != tag:
        chain.append(base)
    if FALLBACK_LANGUAGE not in chain:
        chain.append(FALLBACK_LANGUAGE)
    return tuple(chain)


def changed_file_message(
    registry: ContentRegistry, entry: ContentEntry, name: str, actual: str
) -> str:
    """What to say about an approved file whose bytes changed, and what to do instead."""
    newest = max((e.version for e in registry.versions(entry.id)), default=entry.version)
    if entry.origin is not None:
        return (
            f"body `{name}` of {entry.status} content {entry.ref} ({entry.origin.source} item "
            f"{entry.origin.external_id}, {entry.origin.locale}, version "
            f"{entry.origin.source_version}) changed after it was fetched (sha256 "
            f"{actual[:12]}…, recorded {entry.sha256[name][:12]}…). Stored CMS bodies never "
            "change: delete the file and run `q2c cms sync`, which writes it again from the "
            "CMS while the CMS keeps that version"
        )
    return (
        f"file `{name}` of {entry.status} content {entry.ref} changed after approval "
        f"(sha256 {actual[:12]}…, registry says {entry.sha256[name][:12]}…). Approved "
        f"content never changes: restore the file and put the change in a new version "
        f"(v{newest + 1}) of `{entry.id}` in {registry.root / REGISTRY_FILE}"
    )


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


def autoescaped(template_name: str | None) -> bool:
    """Escape HTML-like templates; leave plain-text ones (emails' text part) alone.

    A caller that puts a plain-text template's output into HTML must escape it itself.
    """
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
        autoescape=autoescaped,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


def load_registry(content_dir: Path | None = None, cms: object = None) -> ContentRegistry:
    """Read and check `registry.yaml` of a content folder (the repository's by default).

    The approved and retired versions fetched from the configured CMS sources are added
    (`q2c.content.cms.registry_merge`): `cms` None reads them from the store the settings
    name when `cms_sources` lists any, False leaves them out, and a `CmsStore` reads that
    store.

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
    if cms is not False:
        from q2c.content.cms.registry_merge import cms_entries

        entries += cms_entries(cms)
    _check_unique(entries, registry_path)
    log.debug("content registry %s loaded with %d entries", registry_path, len(entries))
    return ContentRegistry(root, entries)


def _parse_entry(raw: object, index: int, registry_path: Path, root: Path) -> ContentEntry:
    where = f"{registry_path}, entry {index}"
    if not isinstance(raw, dict):
        raise ContentRegistryError(f"{where}: an entry must be a mapping")
    where = f"{where} (`{raw.get('id', '?')}` v{raw.get('version', '?')})"
    for name in _REQUIRED_FIELDS:
        if raw.get(name) in (None, "", {}):
            raise ContentRegistryError(f"{where}: field `{name}` is missing")

    status, kind = str(raw["status"]), str(raw["kind"])
    if status not in STATUSES:
        raise ContentRegistryError(f"{where}: field `status` must be one of {STATUSES}")
    if kind not in KINDS:
        raise ContentRegistryError(f"{where}: field `kind` must be one of {KINDS}")
    if status in IMMUTABLE_STATUSES and not (raw.get("approved_by") and raw.get("approved_at")):
        raise ContentRegistryError(
            f"{where}: a {status} entry needs `approved_by` and `approved_at`"
        )
    try:
        version = int(raw["version"])
        effective_from = _as_date(raw["effective_from"])
        effective_to = _as_date(raw["effective_to"]) if raw.get("effective_to") else None
        approved_at = _as_datetime(raw["approved_at"]) if raw.get("approved_at") else None
    except (TypeError, ValueError) as exc:
        raise ContentRegistryError(f"{where}: {exc}") from exc
    if effective_to is not None and effective_to < effective_from:
        raise ContentRegistryError(
            f"{where}: field `effective_to` ({effective_to}) is before `effective_from` "
            f"({effective_from})"
        )

    path = str(PurePosixPath(str(raw["path"])))
    if path.startswith("/") or ".." in PurePosixPath(path).parts:
        raise ContentRegistryError(f"{where}: field `path` must stay inside {root}")
    hashes = _hashes(raw, status, where)
    files = tuple(hashes) if hashes else _folder_files(root / path, where)
    main = str(raw.get("main") or (files[0] if files else ""))
    if main not in files:
        raise ContentRegistryError(f"{where}: field `main` names `{main}`, not a file of it")
    if kind in LANGUAGE_KINDS and not any(
        PurePosixPath(name).stem == FALLBACK_LANGUAGE for name in files
    ):
        raise ContentRegistryError(
            f"{where}: a {kind} entry needs an English file (`en.*`), the last language "
            "every reader falls back to"
        )
    content_id = str(raw["id"])
    return ContentEntry(
        id=content_id,
        version=version,
        status=status,
        kind=kind,
        path=path,
        sha256=hashes,
        main=main,
        effective_from=effective_from,
        effective_to=effective_to,
        approved_by=raw.get("approved_by"),
        approved_at=approved_at,
        description=str(raw.get("description") or ""),
        root=root,
        targeting=_targeting(raw.get("targeting"), where),
        slot=_slot(raw, kind, content_id, where),
        case=_slug_field(raw, "case", where) if kind == "legal" else None,
        placement=_placement(raw, where) if kind == "blocks" else None,
        texts=_names(raw, "texts", where, DEFAULT_TEXTS) if kind == "template" else (),
        legal_cases=(
            _names(raw, "legal_cases", where, None)
            if kind == "template" and "legal_cases" in raw
            else None
        ),
        files=files,
    )


def _hashes(raw: dict, status: str, where: str) -> dict[str, str]:
    hashes = raw.get("sha256")
    if hashes in (None, {}):
        if status in IMMUTABLE_STATUSES:
            raise ContentRegistryError(f"{where}: field `sha256` is missing")
        return {}
    if not isinstance(hashes, dict):
        raise ContentRegistryError(f"{where}: field `sha256` must map file names to hashes")
    return {str(name): str(value) for name, value in hashes.items()}


def _folder_files(folder: Path, where: str) -> tuple[str, ...]:
    """The files of a draft that records no hashes yet: everything in its folder."""
    if not folder.is_dir():
        raise ContentRegistryError(f"{where}: folder {folder} does not exist")
    return tuple(
        sorted(
            path.relative_to(folder).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
    )


def _targeting(raw: object, where: str) -> Targeting:
    if raw in (None, {}):
        return Targeting()
    if not isinstance(raw, dict):
        raise ContentRegistryError(
            f"{where}: field `targeting` must map {', '.join(TARGETING_FIELDS)} to a value "
            "or a list"
        )
    unknown = sorted(set(map(str, raw)) - set(TARGETING_FIELDS))
    if unknown:
        raise ContentRegistryError(
            f"{where}: `targeting` has unknown field(s) {', '.join(unknown)}; use "
            f"{', '.join(TARGETING_FIELDS)}"
        )
    values: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        items = value if isinstance(value, list) else [value]
        normalized = tuple(sorted({_normalize(name, item, where) for item in items}))
        if not normalized:
            raise ContentRegistryError(f"{where}: `targeting.{name}` is empty; leave it out")
        values[str(name)] = normalized
    return Targeting(**values)


def _normalize(name: str, value: object, where: str) -> str:
    text = str(value or "").strip()
    if name == "country":
        normalized = text.upper()
        valid = bool(re.fullmatch(r"[A-Z]{2}", normalized))
    elif name == "language":
        normalized = normalize_language(text)
        valid = bool(_LANGUAGE_TAG.match(normalized))
    else:
        normalized = text.lower()
        valid = bool(normalized) and (name != "channel" or normalized in CHANNELS)
    if not valid:
        expected = {
            "country": "an ISO 3166 code such as DE",
            "language": "a language tag such as de or de-AT",
            "channel": f"one of {', '.join(CHANNELS)}",
        }.get(name, "a name")
        raise ContentRegistryError(f"{where}: `targeting.{name}: {value}` is not {expected}")
    return normalized


def _slot(raw: dict, kind: str, content_id: str, where: str) -> str:
    if raw.get("slot"):
        return _slug_field(raw, "slot", where)
    if kind == "theme":
        return "theme"
    if kind == "legal":
        return _slug_field(raw, "case", where)
    return content_id


def _slug_field(raw: dict, name: str, where: str) -> str:
    value = str(raw.get(name) or "")
    if not _SLUG.match(value):
        raise ContentRegistryError(
            f"{where}: field `{name}` must be a name such as late_payment (got `{value}`)"
        )
    return value


def _placement(raw: dict, where: str) -> str:
    value = str(raw.get("placement") or "")
    if value not in PLACEMENTS:
        raise ContentRegistryError(
            f"{where}: a message block needs `placement`, one of {', '.join(PLACEMENTS)}"
        )
    return value


def _names(
    raw: dict, name: str, where: str, default: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    value = raw.get(name)
    if value is None:
        return default
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not _SLUG.match(str(item)):
            raise ContentRegistryError(f"{where}: `{name}` lists `{item}`, which is not a name")
    return tuple(str(item) for item in items)


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
    """An approval time; one written without a zone is read as UTC."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

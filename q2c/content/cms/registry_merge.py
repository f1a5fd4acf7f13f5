"""CMS item versions as content registry entries, beside the ones in `content/`.

Every approved or retired version in the CMS store of a configured source becomes a
`ContentEntry`, so selection, the lock check and the document manifest treat it like any
other version:

- id `<content_id>.<locale>` (`late_payment_de.de`), its version number the one the store
  gave it when it was first seen approved (stable across runs); kind `blocks` or `legal`;
- its one file is the sanitized body in the store, pinned by its SHA-256;
- status approved, or retired with `effective_to` the day before `retired_at`: a
  selection for an earlier day still gets it, a later one never does;
- in effect from the day it was approved, or from the item's own `effective_from` (in its
  metadata) when that is later, and up to its own `effective_to`; approved by whom the
  CMS says (or, where it does not, the CMS and its state, `wordpress (publish)`);
- slot: a block's `metadata.slot` or else its content id, a legal text's case; placement
  and targeting from the item. A locale other than `en` targets its language (`de-DE`
  and `de` target `de`, `en-GB` targets `en`), so a reader of `de` or `de-AT` gets the
  German version and every other reader falls back to `en`, as with files in `content/`;
  regions are told apart by targeting a country;
- `origin` names source, external id, locale and source version, which the document
  manifest records with the hash.

Drafts never become entries. A version the registry cannot use (a legal text without a
case, a block without a placement, targeting it cannot read, a locale that is not a
language tag such as `de` or `de-AT`) is left out and logged. One entry id belongs to one
CMS item in one locale and kind: the first that became an entry keeps it, and another
item (or the same content id as another kind) claiming it later is left out with a problem
naming both, so an editor's typo never silently replaces a legal text.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from q2c.content.cms.store import CmsStore, StoredVersion
from q2c.content.registry import (
    FALLBACK_LANGUAGE,
    PLACEMENTS,
    ContentEntry,
    ContentOrigin,
    ContentRegistryError,
    Targeting,
    _slug_field,
    _targeting,
    normalize_language,
)

log = logging.getLogger(__name__)

ENTRY_KINDS = ("blocks", "legal")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")


def configured_store(settings=None) -> tuple[CmsStore | None, tuple[str, ...]]:
    """The CMS store and sources the settings name; no store when no source is set."""
    if settings is None:
        from q2c.settings import load_settings

        settings = load_settings()
    if not settings.cms_sources:
        return None, ()
    return CmsStore.from_settings(settings), tuple(settings.cms_sources)


def cms_entries(cms: object = None) -> list[ContentEntry]:
    """The registry entries of the CMS store (`load_registry(cms=...)` explains `cms`)."""
    if isinstance(cms, CmsStore):
        store, sources = cms, None
    else:
        store, sources = configured_store()
    if store is None:
        return []
    entries, problems = build_entries(store.versions(sources=sources), store)
    for problem in problems:
        log.warning("cms content left out of the registry: %s", problem)
    return entries


def build_entries(
    versions: list[StoredVersion], store: CmsStore
) -> tuple[list[ContentEntry], list[str]]:
    """Entries of the usable versions, and why each unusable one was left out."""
    entries, problems = [], []
    holders = _holders(store)
    for version in versions:
        if not becomes_entry(version):
            continue
        holder = holders.get(version.entry_id)
        if holder is not None and _owner(holder) != _owner(version):
            problems.append(
                f"{version.label} ({version.kind}) claims q2c id {version.entry_id}, which "
                f"{holder.label} ({holder.kind}) already has; give one of them another "
                "content id (or locale) in the CMS"
            )
            continue
        try:
            entries.append(entry_of(version, store))
        except ContentRegistryError as exc:
            problems.append(str(exc))
    return entries, problems


def _owner(version: StoredVersion) -> tuple[str, str, str, str]:
    return version.source, version.external_id, version.locale, version.kind


def _holders(store: CmsStore) -> dict[str, StoredVersion]:
    """For each entry id, the item version that first became an entry under it."""
    holders: dict[str, StoredVersion] = {}
    for version in store.versions(statuses=("approved", "retired")):
        if not becomes_entry(version) or not _LOCALE.match(version.locale):
            continue
        held = holders.get(version.entry_id)
        if held is None or int(version.version) < int(held.version):
            holders[version.entry_id] = version
    return holders


def becomes_entry(version: StoredVersion) -> bool:
    """Approved (or once approved, now retired) blocks and legal texts; never a draft."""
    return (
        version.kind in ENTRY_KINDS
        and version.status in ("approved", "retired")
        and version.version is not None
    )


def entry_of(version: StoredVersion, store: CmsStore) -> ContentEntry:
    """The registry entry of one approved or retired version.

    Raises:
        ContentRegistryError: Naming the item and what the registry needs from it.
    """
    where = f"{version.label} ({version.entry_id})"
    if not _LOCALE.match(version.locale):
        raise ContentRegistryError(
            f"{where}: locale {version.locale!r} is not a language tag such as de or de-AT; "
            "fix the item's language in the CMS"
        )
    folder, name = version.body_file.rsplit("/", 1)
    approved_at = version.approved_at or version.fetched_at
    effective_from, effective_to = _effective(version, approved_at, where)
    kind = version.kind
    if kind == "legal":
        case = _slug_field({"case": version.case}, "case", f"{where}: legal text")
        slot, placement = case, None
    else:
        slot = _slug_field({"slot": version.metadata.get("slot") or version.content_id},
                           "slot", f"{where}: content id or metadata.slot")
        case, placement = None, version.placement
        if placement not in PLACEMENTS:
            raise ContentRegistryError(
                f"{where}: a message block needs a placement, one of {', '.join(PLACEMENTS)} "
                f"(got {placement!r}); set it in the CMS and publish again"
            )
    return ContentEntry(
        id=version.entry_id,
        version=int(version.version),
        status=version.status,
        kind=kind,
        path=str(store.body_dir / folder),
        sha256={name: version.sha256},
        main=name,
        effective_from=effective_from,
        effective_to=effective_to,
        approved_by=version.approved_by or f"{version.source} ({version.source_status})",
        approved_at=approved_at,
        description=(
            f"{version.title or version.content_id}: {kind} from {version.source} item "
            f"{version.external_id}, locale {version.locale}, version "
            f"{version.source_version} ({version.source_status})"
        ),
        root=store.body_dir,
        targeting=entry_targeting(version, where),
        slot=slot,
        case=case,
        placement=placement,
        files=(name,),
        origin=ContentOrigin(
            source=version.source,
            external_id=version.external_id,
            locale=version.locale,
            source_version=version.source_version,
            source_status=version.source_status,
            raw_sha256=version.raw_sha256,
        ),
    )


def entry_targeting(version: StoredVersion, where: str) -> Targeting:
    """The item's targeting, with its locale as the language unless it names one.

    English is where every language falls back to, so an `en` version targets no language;
    any other locale targets its language without the region (`de-DE` -> `de`).
    """
    raw = {name: list(values) for name, values in version.targeting.items() if values}
    language = normalize_language(version.locale)
    if "language" not in raw and language and language != FALLBACK_LANGUAGE:
        raw["language"] = [language.split("-")[0]]
    return _targeting(raw, f"{where}: targeting")


def _effective(version: StoredVersion, approved_at: dt.datetime, where: str
               ) -> tuple[dt.date, dt.date | None]:
    """First and last day of use: approval or the item's own dates, and its retirement."""
    first = approved_at.astimezone(dt.UTC).date()
    last = None
    try:
        if version.metadata.get("effective_from"):
            first = max(first, _date(version.metadata["effective_from"]))
        if version.metadata.get("effective_to"):
            last = _date(version.metadata["effective_to"])
    except ValueError as exc:
        raise ContentRegistryError(f"{where}: effective date in the CMS: {exc}") from exc
    if version.status == "retired" and version.retired_at is not None:
        day_before = version.retired_at.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        last = day_before if last is None else min(last, day_before)
    return first, last


def _date(value: object) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])

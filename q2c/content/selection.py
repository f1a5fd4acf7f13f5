"""Choose the content of one document, deterministically, and say why.

For one invoice, `select_content()` picks the template, the theme, the label texts, the
message blocks and the legal texts from what is in force on a date, for the account's
segment, country, language and brand and the channel the document goes out by.

The rules, in the order they apply:

1. **In force.** Per content id, the newest approved version whose effective dates include
   the date (`ContentRegistry.in_force`). A preview may use drafts; production never does.
   A newer version replaces an older one of the same id whatever their targeting; a
   variant for other readers is another id in the same slot.
2. **Matching.** A version matches when every targeting field it names contains the
   reader's value; a field it leaves out matches anyone. A language targeted as `de`
   matches readers of `de` and `de-AT`.
3. **Most specific wins.** Among the matching versions of a slot, the one that names the
   most targeting fields wins; a tie goes to the higher version, then to the id that sorts
   first. Every slot of the template, theme and each label text yields one choice; every
   message block slot with a match is printed; every legal case of the invoice
   (`q2c.content.legal_cases`) yields one legal text.
4. **Fallbacks.** Files are per language and tried along `de-AT -> de -> en`. A legal case
   with country versions but none for the reader's country takes the version without a
   country (`country AT -> default`). Every fallback taken is recorded on the choice and
   on the document, and logged when the document is rendered.

A `Selection` is plain data (picklable) and says for each choice the version and why
(`country=DE, language=de`); `Selection.hash_payload()` goes into the document's input
hash, so a changed block or legal text renders the document again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from q2c.content.legal_cases import CASES, legal_cases
from q2c.content.registry import (
    PLACEMENTS,
    ContentEntry,
    ContentNotFoundError,
    ContentRegistry,
    language_chain,
    normalize_language,
)

log = logging.getLogger(__name__)

DEFAULT_DOCUMENT = "invoice"
DEFAULT_CHANNEL = "pdf"
THEME_SLOT = "theme"
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur"})
_ROLES = ("template", "theme", "labels", "block", "legal")


@dataclass(frozen=True)
class Audience:
    """The reader of one document, as content targeting sees it."""

    segment: str | None = None
    country: str | None = None
    language: str = "en"
    brand: str | None = None
    channel: str = DEFAULT_CHANNEL

    def offers(self, name: str) -> tuple[str, ...]:
        """The values this reader matches for a targeting field (`de-AT` offers de too)."""
        if name == "language":
            tag = normalize_language(self.language) or "en"
            base = tag.split("-")[0]
            return (tag, base) if base != tag else (tag,)
        value = getattr(self, name)
        return (value,) if value else ()

    @property
    def direction(self) -> str:
        """`rtl` for Arabic, Hebrew, Persian and Urdu, else `ltr`."""
        return "rtl" if self.language.split("-")[0] in RTL_LANGUAGES else "ltr"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "segment": self.segment,
            "country": self.country,
            "language": self.language,
            "brand": self.brand,
            "channel": self.channel,
        }


def audience_for(
    doc: object | None,
    channel: str = DEFAULT_CHANNEL,
    *,
    segment: str | None = None,
    brand: str | None = None,
) -> Audience:
    """The audience of a document: segment, country, language and brand of its account.

    The country is the buyer's; segment and brand are read from the document when it
    carries them, and the arguments win over the document.
    """
    buyer = getattr(doc, "buyer", None)
    segment = segment if segment is not None else getattr(doc, "segment", None)
    brand = brand if brand is not None else getattr(doc, "brand", None)
    country = str(getattr(buyer, "country", None) or "").strip().upper() or None
    return Audience(
        segment=_name(segment),
        country=country,
        language=normalize_language(getattr(doc, "language", None)) or "en",
        brand=_name(brand),
        channel=_name(channel) or DEFAULT_CHANNEL,
    )


def _name(value: object) -> str | None:
    """A segment, brand or channel as targeting compares it: trimmed, lower case."""
    return str(value).strip().lower() or None if value else None


@dataclass(frozen=True)
class Choice:
    """One content version chosen for a document, and why.

    Attributes:
        role: `template`, `theme`, `labels`, `block` or `legal`.
        entry: The version chosen.
        matched: The targeting fields that matched, with the reader's value.
        language: The language of the file used (texts, blocks and legal texts).
        file: The file used, relative to the entry's folder.
        fallbacks: Fallbacks taken to find it (`language pt -> en`).
        substituted: Put in place by a preview instead of being selected.
    """

    role: str
    entry: ContentEntry
    matched: tuple[tuple[str, str], ...] = ()
    language: str | None = None
    file: str | None = None
    fallbacks: tuple[str, ...] = ()
    substituted: bool = False

    @property
    def why(self) -> str:
        """`country=DE, language=de`; `any reader` for untargeted content."""
        if self.substituted:
            return "substituted for preview"
        return ", ".join(f"{name}={value}" for name, value in self.matched) or "any reader"

    @property
    def label(self) -> str:
        """`legal late_payment_de v1`, as summaries count it."""
        return f"{self.role} {self.entry.id} v{self.entry.version}"

    def record(self) -> dict:
        entry = self.entry
        record = {
            "role": self.role,
            "id": entry.id,
            "version": entry.version,
            "status": entry.status,
            "slot": entry.slot,
            "why": self.why,
            "matched": dict(self.matched),
            "targeting": entry.targeting.as_dict(),
        }
        if entry.case:
            record["case"] = entry.case
        if entry.placement:
            record["placement"] = entry.placement
        if self.language:
            record["language"] = self.language
        if self.fallbacks:
            record["fallbacks"] = list(self.fallbacks)
        if entry.origin is not None:
            record["cms"] = entry.origin.record(entry.sha256.get(self.file or entry.main))
        return record


@dataclass(frozen=True)
class Selection:
    """The content one document is rendered with, every choice explained.

    `template`, `theme` and `texts` are the chosen entries (the first label texts for
    `texts`); `choices` holds all of them with their reasons.
    """

    invoice_id: str | None
    audience: Audience
    on: dt.date
    preview: bool
    choices: tuple[Choice, ...]
    cases: tuple[str, ...] = ()

    def of_role(self, role: str) -> tuple[Choice, ...]:
        return tuple(choice for choice in self.choices if choice.role == role)

    @property
    def template(self) -> ContentEntry:
        return self.of_role("template")[0].entry

    @property
    def theme(self) -> ContentEntry:
        return self.of_role("theme")[0].entry

    @property
    def texts(self) -> ContentEntry:
        return self.of_role("labels")[0].entry

    @property
    def blocks(self) -> tuple[Choice, ...]:
        return self.of_role("block")

    @property
    def legal(self) -> tuple[Choice, ...]:
        return self.of_role("legal")

    @property
    def direction(self) -> str:
        return self.audience.direction

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return tuple(text for choice in self.choices for text in choice.fallbacks)

    @property
    def is_draft(self) -> bool:
        """Whether any chosen version is a draft (the document is then a preview only)."""
        return any(choice.entry.is_draft for choice in self.choices)

    @property
    def is_preview(self) -> bool:
        """Whether the document must carry the DRAFT watermark and never be sent."""
        return self.preview or self.is_draft or any(c.substituted for c in self.choices)

    def entries(self) -> tuple[ContentEntry, ...]:
        return tuple(choice.entry for choice in self.choices)

    def versions(self) -> dict[str, dict[str, str]]:
        """Template, theme and texts: id and version, as plain strings."""
        return {
            role: {"id": entry.id, "version": str(entry.version)}
            for role, entry in (
                ("template", self.template),
                ("theme", self.theme),
                ("texts", self.texts),
            )
        }

    def hash_payload(self) -> list[dict]:
        """Everything chosen that shapes the output, for the document's input hash.

        Versions, the file and language used, and the recorded sha256 of each file (a
        draft's bytes may change without a new version; a preview is never recorded).
        Message blocks are left out: they are chosen when a document is first rendered,
        and a campaign that starts or ends later must not re-render (and so change) an
        invoice that may already have been sent.
        """
        return [
            {
                "role": choice.role,
                "ref": choice.entry.ref,
                "status": choice.entry.status,
                "file": choice.file,
                "language": choice.language,
                "sha256": dict(sorted(choice.entry.sha256.items())),
                "substituted": choice.substituted,
            }
            for choice in self.choices
            if choice.role != "block"
        ]

    def record(self) -> dict:
        """The selection as JSON types: versions and reasons, for the document manifest."""
        return {
            "on": self.on.isoformat(),
            "preview": self.is_preview,
            "audience": self.audience.as_dict(),
            "cases": list(self.cases),
            "choices": [choice.record() for choice in self.choices],
            "fallbacks": list(self.fallbacks),
        }

    def to_json(self) -> str:
        return json.dumps(self.record(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """One line per choice, for people: `legal late_payment_de v1: country=DE`."""
        lines = [f"{choice.label}: {choice.why}" for choice in self.choices]
        lines += [f"fallback: {text}" for text in self.fallbacks]
        return "\n".join(lines)


@dataclass(frozen=True)
class ContentSet:
    """The content in force for a batch: per id the version selection may use, on one date.

    It is plain data, picklable to render workers; `select()` makes each document's
    `Selection` from it without touching files. `template`, `theme` and `texts` are the
    choices for a reader nothing is known about (used to warm a renderer up).
    """

    root: Path
    on: dt.date
    preview: bool
    entries: tuple[ContentEntry, ...]
    substitutes: tuple[ContentEntry, ...] = ()
    channel: str = DEFAULT_CHANNEL
    document: str = DEFAULT_DOCUMENT

    def select(
        self,
        doc: object | None,
        *,
        segment: str | None = None,
        brand: str | None = None,
        channel: str | None = None,
        document: str | None = None,
    ) -> Selection:
        """The selection for one document (rules in the module docstring).

        Raises:
            ContentNotFoundError: When no template, theme, label texts or legal text for a
                case of the document is in force for this reader.
        """
        audience = audience_for(doc, channel or self.channel, segment=segment, brand=brand)
        pinned = {(entry.kind, entry.slot): entry for entry in self.substitutes}
        document = next(
            (entry.slot for entry in self.substitutes if entry.kind == "template"),
            document or self.document,
        )
        template = self._required("template", "template", document, audience, pinned)
        choices = [template, self._required("theme", "theme", THEME_SLOT, audience, pinned)]
        for slot in template.entry.texts:
            choices.append(self._required("labels", "texts", slot, audience, pinned))
        choices += self._blocks(audience, pinned)
        cases = legal_cases(doc) if doc is not None else ()
        if template.entry.legal_cases is not None:
            cases = tuple(case for case in cases if case in template.entry.legal_cases)
        cases = tuple(sorted({*cases, *(slot for kind, slot in pinned if kind == "legal")},
                             key=_case_order))
        for case in cases:
            choices.append(self._required("legal", "legal", case, audience, pinned))
        return Selection(
            invoice_id=getattr(doc, "invoice_id", None),
            audience=audience,
            on=self.on,
            preview=self.preview or bool(self.substitutes),
            choices=tuple(choices),
            cases=cases,
        )

    @cached_property
    def neutral(self) -> Selection:
        return self.select(None)

    @property
    def template(self) -> ContentEntry:
        return self.neutral.template

    @property
    def theme(self) -> ContentEntry:
        return self.neutral.theme

    @property
    def texts(self) -> ContentEntry:
        return self.neutral.texts

    def versions(self) -> dict:
        """Every version in force, for hashes that cover whatever a document may use."""
        return {
            "on": self.on.isoformat(),
            "preview": self.preview,
            "in_force": sorted(entry.ref for entry in self.entries),
            "substitutes": sorted(entry.ref for entry in self.substitutes),
        }

    def _required(
        self,
        role: str,
        kind: str,
        slot: str,
        audience: Audience,
        pinned: Mapping[tuple[str, str], ContentEntry],
    ) -> Choice:
        choice = self._choose(role, kind, slot, audience, pinned)
        if choice is None:
            what = {"legal": "legal text for case", "labels": "label texts"}.get(role, role)
            raise ContentNotFoundError(
                f"no {what} `{slot}` is in force on {self.on} for "
                f"{_describe(audience)} (in force: {self._in_slot(kind, slot) or 'none'}); "
                f"approve one, or one without targeting, in {self.root / 'registry.yaml'}"
            )
        return choice

    def _blocks(
        self, audience: Audience, pinned: Mapping[tuple[str, str], ContentEntry]
    ) -> list[Choice]:
        slots = {entry.slot for entry in self.entries if entry.kind == "blocks"}
        slots |= {slot for kind, slot in pinned if kind == "blocks"}
        chosen = [self._choose("block", "blocks", slot, audience, pinned) for slot in slots]
        return sorted(
            (choice for choice in chosen if choice is not None),
            key=lambda c: (PLACEMENTS.index(c.entry.placement), c.entry.slot),
        )

    def _choose(
        self,
        role: str,
        kind: str,
        slot: str,
        audience: Audience,
        pinned: Mapping[tuple[str, str], ContentEntry],
    ) -> Choice | None:
        if (kind, slot) in pinned:
            entry = pinned[(kind, slot)]
            return _with_file(Choice(role, entry, substituted=True), audience)
        matches = []
        for entry in self.entries:
            if entry.kind == kind and entry.slot == slot:
                matched = _match(entry, audience)
                if matched is not None:
                    matches.append((entry, matched))
        if not matches:
            return None
        entry, matched = min(matches, key=lambda m: (-len(m[1]), -m[0].version, m[0].id))
        choice = _with_file(Choice(role, entry, matched), audience)
        if kind == "legal" and not entry.targeting.country and audience.country:
            if any(e.targeting.country for e in self.entries if e.kind == kind and e.slot == slot):
                fallback = f"legal {slot}: country {audience.country} -> default"
                choice = _replace_fallbacks(choice, (fallback, *choice.fallbacks))
        return choice

    def _in_slot(self, kind: str, slot: str) -> str:
        return ", ".join(
            f"{e.ref} ({e.targeting.describe()})"
            for e in self.entries
            if e.kind == kind and e.slot == slot
        )


def _match(entry: ContentEntry, audience: Audience) -> tuple[tuple[str, str], ...] | None:
    """The (field, value) pairs of the reader that meet the targeting; None if one fails."""
    matched = []
    for name, values in entry.targeting.constrained():
        hit = next((value for value in audience.offers(name) if value in values), None)
        if hit is None:
            return None
        matched.append((name, hit))
    return tuple(matched)


def _with_file(choice: Choice, audience: Audience) -> Choice:
    """Add the language file a text, block or legal text is read from, along the chain."""
    files = choice.entry.language_files()
    if choice.entry.kind not in ("texts", "blocks", "legal") or not files:
        return choice
    chain = language_chain(audience.language)
    for position, tag in enumerate(chain):
        if tag in files:
            fallbacks = choice.fallbacks
            if position:
                fallbacks += (
                    f"{choice.role} {choice.entry.id}: language {chain[0]} -> {tag}",
                )
            return Choice(
                choice.role,
                choice.entry,
                choice.matched,
                language=tag,
                file=files[tag],
                fallbacks=fallbacks,
                substituted=choice.substituted,
            )
    return choice


def _replace_fallbacks(choice: Choice, fallbacks: tuple[str, ...]) -> Choice:
    return Choice(
        choice.role,
        choice.entry,
        choice.matched,
        choice.language,
        choice.file,
        fallbacks,
        choice.substituted,
    )


def _case_order(case: str) -> tuple[int, str]:
    return (CASES.index(case) if case in CASES else len(CASES), case)


def _describe(audience: Audience) -> str:
    parts = [f"{name}={value}" for name, value in audience.as_dict().items() if value]
    return ", ".join(parts) or "any reader"


def selection_of(doc: object, used: Selection | ContentSet) -> Selection:
    """The selection of one document: made from a batch's `ContentSet`, or `used` itself.

    Raises:
        ValueError: When `used` is a selection made for another invoice.
    """
    if isinstance(used, ContentSet):
        return used.select(doc)
    invoice_id = getattr(doc, "invoice_id", None)
    if used.invoice_id not in (None, invoice_id):
        raise ValueError(
            f"the content selection passed for invoice {invoice_id} was made for invoice "
            f"{used.invoice_id}; pass the batch's ContentSet (resolve_content()) so each "
            "invoice gets its own"
        )
    return used


def content_in_force(
    registry: ContentRegistry,
    *,
    on: dt.date | None = None,
    preview: bool = False,
    channel: str = DEFAULT_CHANNEL,
    document: str = DEFAULT_DOCUMENT,
    substitutes: Sequence[ContentEntry] = (),
) -> ContentSet:
    """The content a batch selects from on `on` (today, UTC, by default).

    Every approved version in force is verified against its recorded sha256 here, so a
    changed file stops the batch before its first document.
    """
    on = on or dt.datetime.now(dt.UTC).date()
    entries = registry.in_force(on, preview=preview)
    for entry in (*entries, *substitutes):
        registry.verify(entry)
    return ContentSet(
        root=registry.root,
        on=on,
        preview=preview,
        entries=tuple(entries),
        substitutes=tuple(substitutes),
        channel=channel,
        document=document,
    )


def select_content(
    registry: ContentRegistry,
    doc: object | None,
    *,
    channel: str = DEFAULT_CHANNEL,
    on: dt.date | None = None,
    preview: bool = False,
    document: str = DEFAULT_DOCUMENT,
    segment: str | None = None,
    brand: str | None = None,
    substitute: ContentEntry | None = None,
) -> Selection:
    """Choose template, theme, labels, blocks and legal texts for one document.

    Args:
        registry: The content registry.
        doc: The invoice (an `InvoiceDocument`); its buyer country, language and, when it
            carries them, segment and brand are the reader.
        channel: `pdf`, `email`, `portal` or `edi`.
        on: The date the content must be in effect on; today (UTC) when omitted.
        preview: Let drafts win where they exist (a watermarked preview, never sent).
        document: The template slot to fill: `invoice`, `credit_note`, ...
        segment: The account's segment, when the document does not carry it.
        brand: The brand the document goes out under, when the document does not say.
        substitute: A version (draft or any) to use in place of its slot's choice, for a
            preview; the selection is then a preview.

    Raises:
        ContentNotFoundError: When a required slot has nothing in force for this reader.
        ContentIntegrityError: When a chosen approved file changed.
    """
    content = content_in_force(
        registry,
        on=on,
        preview=preview,
        channel=channel,
        document=document,
        substitutes=(substitute,) if substitute else (),
    )
    return content.select(doc, segment=segment, brand=brand)


def selection_summary(rendered: Iterable[object]) -> dict[str, int]:
    """How many documents used each version, and each fallback, for asset metadata.

    Args:
        rendered: Rendered documents (anything with a `content_selection` record, as JSON
            text or a mapping) or the records themselves.

    Returns:
        `{"template invoice v3": 120, "legal reverse_charge_eu v1": 7,
        "fallback: labels invoice_labels: language pt -> en": 2, ...}`, sorted by key.
    """
    counts: Counter[str] = Counter()
    for item in rendered:
        record = getattr(item, "content_selection", item)
        if isinstance(record, str):
            record = json.loads(record) if record else {}
        for choice in record.get("choices", ()):
            counts[f"{choice['role']} {choice['id']} v{choice['version']}"] += 1
        for fallback in record.get("fallbacks", ()):
            counts[f"fallback: {fallback}"] += 1
    return dict(sorted(counts.items()))


__all__ = [
    "selection_of",
    "Audience",
    "Choice",
    "ContentSet",
    "Selection",
    "audience_for",
    "content_in_force",
    "select_content",
    "selection_summary",
]

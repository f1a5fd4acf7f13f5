"""The content lock: approved files never change, and production never leans on a draft.

The sha256 of every file of an approved or retired version is recorded in `registry.yaml`;
that record is the lock. `check_lock()` hashes every such file again (no cache), flags files
added to an approved folder after approval, and checks that approved content refers to no
draft: no template includes or imports a draft's file, no stylesheet or template names a
path inside a draft's folder, and every label text an approved template declares has an
approved version. `approve()` turns a draft into an approved version by recording its
hashes, approver and approval time in `registry.yaml`, and refuses anything but a draft.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jinja2 import TemplateSyntaxError, meta

from q2c.content.registry import (
    IMMUTABLE_STATUSES,
    REGISTRY_FILE,
    ContentEntry,
    ContentError,
    ContentRegistry,
    ContentRegistryError,
    changed_file_message,
    file_sha256,
    load_registry,
)

_TEMPLATE_SUFFIXES = (".html", ".htm", ".txt", ".xml", ".j2")
_TEXT_SUFFIXES = (*_TEMPLATE_SUFFIXES, ".css", ".yaml", ".yml", ".svg", ".md")
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


class ContentApprovalError(ContentError):
    """A version cannot be approved (it is not a draft, or it refers to a draft)."""


@dataclass(frozen=True)
class LockProblem:
    """One thing wrong with the lock: the file (relative to the content root) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_lock(registry: ContentRegistry) -> list[LockProblem]:
    """Every way the content folder breaks its lock, in registry order (empty when intact)."""
    problems: list[LockProblem] = []
    drafts = [entry for entry in registry.entries if entry.is_draft]
    for entry in registry.entries:
        if entry.status in IMMUTABLE_STATUSES:
            problems += _changed_files(registry, entry)
            if entry.origin is None:  # CMS bodies share content-addressed folders
                problems += _added_files(registry, entry)
        if entry.status == "approved":
            problems += draft_references(registry, entry, drafts)
        if entry.approved_at is not None and entry.approved_at > _now():
            problems.append(LockProblem(
                f"registry.yaml ({entry.ref})",
                f"approved_at {entry.approved_at.isoformat()} is in the future: record when "
                "it was approved (q2c content approve does)",
            ))
    return problems


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _changed_files(registry: ContentRegistry, entry: ContentEntry) -> list[LockProblem]:
    problems = []
    for name, expected in entry.sha256.items():
        path = entry.file_path(name)
        where = entry.file_name(name)
        if not path.is_file():
            problems.append(LockProblem(
                where, f"file of {entry.status} content {entry.ref} is missing; restore it "
                "from version control"
            ))
            continue
        actual = file_sha256(path)
        if actual != expected:
            problems.append(LockProblem(where, changed_file_message(registry, entry, name, actual)))
    return problems


def _added_files(registry: ContentRegistry, entry: ContentEntry) -> list[LockProblem]:
    if not entry.folder.is_dir():
        return []
    problems = []
    for path in sorted(entry.folder.rglob("*")):
        name = path.relative_to(entry.folder).as_posix()
        if path.is_file() and not path.name.startswith(".") and name not in entry.sha256:
            problems.append(LockProblem(
                entry.file_name(name),
                f"added to {entry.status} content {entry.ref} after approval. Approved content "
                f"never changes: remove it, and put it in a new version of `{entry.id}`",
            ))
    return problems


def draft_references(
    registry: ContentRegistry, entry: ContentEntry, drafts: list[ContentEntry] | None = None
) -> list[LockProblem]:
    """The places where `entry` (approved, or about to be) refers to a draft's files."""
    drafts = [d for d in (drafts or registry.entries) if d.is_draft and d.ref != entry.ref]
    problems = []
    for name in entry.files:
        path = entry.file_path(name)
        if path.suffix.lower() not in _TEXT_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        where = entry.file_name(name)
        targets = set()
        if path.suffix.lower() in _TEMPLATE_SUFFIXES and entry.kind in ("template", "blocks"):
            targets |= _jinja_references(registry, text, where, problems)
        targets |= {
            str(PurePosixPath(entry.file_name(name)).parent / (a or b))
            for a, b in _CSS_URL.findall(text)
        }
        for draft in drafts:
            folder = draft.path.rstrip("/") + "/"
            named = folder in text or any(
                _normalized(target).startswith(folder) for target in targets
            )
            if named:
                problems.append(LockProblem(
                    where, f"approved content {entry.ref} refers to draft {draft.ref} "
                    f"({draft.path}); production may only use approved content: approve "
                    f"{draft.ref} first, or refer to an approved version",
                ))
    if entry.kind == "template":
        for slot in entry.texts:
            if not any(
                e.kind == "texts" and e.slot == slot and e.status == "approved"
                for e in registry.entries
            ):
                problems.append(LockProblem(
                    REGISTRY_FILE, f"approved template {entry.ref} uses label texts `{slot}`, "
                    "which have no approved version; approve one first",
                ))
    return problems


def _jinja_references(
    registry: ContentRegistry, text: str, where: str, problems: list[LockProblem]
) -> set[str]:
    """Templates a template includes, imports or extends; unregistered ones are problems."""
    try:
        parsed = registry.environment.parse(text)
    except TemplateSyntaxError as exc:
        problems.append(LockProblem(where, f"is not a valid template: {exc}"))
        return set()
    found = set()
    for name in meta.find_referenced_templates(parsed):
        if name is None:
            problems.append(LockProblem(
                where, "includes a template by a computed name; name it literally so the lock "
                "can check it"
            ))
        elif registry.entry_for_file(name) is None:
            problems.append(LockProblem(where, f"includes `{name}`, which is not registered"))
        else:
            found.add(name)
    return found


def _normalized(target: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(target).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def approve(
    content_dir: Path,
    content_id: str,
    version: int,
    by: str,
    at: dt.datetime | None = None,
    effective_from: dt.date | None = None,
) -> ContentEntry:
    """Approve a draft: record every file's sha256, the approver and the time.

    `registry.yaml` is edited in place (its comments and order stay) and written
    atomically; the result is loaded again and checked before it replaces the old file.

    Raises:
        ContentApprovalError: When the version is not a draft, has no files, or refers to
            another draft.
        ContentNotFoundError: When the version is not registered.
    """
    registry = load_registry(content_dir)
    entry = registry.version(content_id, version)
    if not entry.is_draft:
        newest = max(e.version for e in registry.versions(content_id))
        raise ContentApprovalError(
            f"{entry.ref} is {entry.status}, not a draft: approved content never changes. "
            f"Copy {entry.path} to a new version (v{newest + 1}), register it as a draft, "
            "and approve that"
        )
    if not by.strip():
        raise ContentApprovalError("say who approves with --by NAME")
    folder = entry.folder
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    if not names:
        raise ContentApprovalError(f"{entry.ref} has no files in {folder}")
    hashes = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}
    at = (at or dt.datetime.now(dt.UTC)).replace(microsecond=0)

    registry_path = registry.root / REGISTRY_FILE
    original = registry_path.read_text(encoding="utf-8")
    updated = _approved_text(original, entry, by.strip(), at, effective_from, hashes)
    _write_atomically(registry_path, updated)
    try:
        approved = load_registry(content_dir)
        result = approved.version(content_id, version)
        problems = draft_references(approved, result)
        if problems:
            raise ContentApprovalError(
                f"{entry.ref} cannot be approved: " + "; ".join(map(str, problems))
            )
    except ContentError:
        _write_atomically(registry_path, original)
        raise
    return result


def _approved_text(
    text: str,
    entry: ContentEntry,
    by: str,
    at: dt.datetime,
    effective_from: dt.date | None,
    hashes: dict[str, str],
) -> str:
    """`registry.yaml` with one draft entry's block rewritten as approved."""
    lines = text.splitlines()
    start, end, indent = _entry_block(lines, entry)
    key_indent = " " * (indent + 2)
    block: list[str] = []
    skipping = False
    for line in lines[start:end]:
        key = _key(line, indent + 2)
        if key is None and skipping and (not line.strip() or _indent(line) > indent + 2):
            continue
        skipping = False
        if key in ("approved_by", "approved_at", "sha256"):
            skipping = True
            continue
        if key == "status":
            block += [
                f"{key_indent}status: approved",
                f"{key_indent}approved_by: {json.dumps(by, ensure_ascii=False)}",
                f"{key_indent}approved_at: {at.isoformat()}",
            ]
            continue
        if key == "effective_from" and effective_from is not None:
            block.append(f"{key_indent}effective_from: {effective_from.isoformat()}")
            continue
        block.append(line)
    while block and not block[-1].strip():
        block.pop()
    block.append(f"{key_indent}sha256:")
    block += [f"{key_indent}  {name}: {digest}" for name, digest in hashes.items()]
    return "\n".join([*lines[:start], *block, *lines[end:]]) + "\n"


def _entry_block(lines: list[str], entry: ContentEntry) -> tuple[int, int, int]:
    """First line, end line and indentation of the entry's `- id:` item in the file."""
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)- id:\s*[\"']?([^\"'\s]+)[\"']?\s*$", line)
        if not match or match.group(2) != entry.id:
            continue
        indent = len(match.group(1))
        end = number + 1
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
        body = lines[number + 1 : end]
        version = next(
            (_value(line) for line in body if _key(line, indent + 2) == "version"), None
        )
        if version == str(entry.version):
            return number, end, indent
    raise ContentRegistryError(
        f"{REGISTRY_FILE}: cannot find the entry of {entry.ref} written as `- id: {entry.id}` "
        "with `version:` under it; approve it by hand"
    )


def _key(line: str, indent: int) -> str | None:
    match = re.match(rf"^ {{{indent}}}([A-Za-z_][A-Za-z0-9_]*):", line)
    return match.group(1) if match else None


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip().strip("\"'")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)

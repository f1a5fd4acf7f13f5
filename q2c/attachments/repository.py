"""The document repository supporting documents are looked up in: a local folder or S3.

Both kinds answer the same two questions: which files match a layout pattern (`list`), and
what are the bytes of one of them (`read`). A layout pattern is a path relative to the
repository root with placeholders for the invoice's ids, the file name part may hold a
glob (`accounts/{account_id}/contracts/*.pdf`); `q2c.attachments.layout` fills it in.

Ids come from the CRM and the ERP, so nothing here trusts them: the layout refuses an id
that is not a plain token before it reaches a path or an S3 key, and the folder repository
also refuses any file whose real path (after symlinks) lies outside its root.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import mimetypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

_MIME_BY_SUFFIX = {
    ".pdf": "application/pdf",
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class RepositoryError(RuntimeError):
    """The repository could not be read (folder missing, bucket unreachable, access denied)."""


@dataclass(frozen=True)
class DocumentRef:
    """A file the repository holds: its path relative to the root and its size in bytes."""

    path: str
    size: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class RepositoryDocument:
    """One supporting document, read: what it is called, its bytes and where it came from.

    Attributes:
        name: The file name (the last part of its path), used as the attachment's name.
        path: Path relative to the repository root (`accounts/0015/contracts/msa.pdf`).
        content: The bytes, exactly as stored.
        mime_type: From the file name (`application/pdf`).
        sha256: Hex sha256 of `content`, for the document's input hash and the record.
        location: Where it was read: an absolute file path or `s3://bucket/key`.
    """

    name: str
    path: str
    content: bytes
    mime_type: str
    sha256: str
    location: str

    @classmethod
    def of(cls, name: str, path: str, content: bytes, location: str) -> RepositoryDocument:
        return cls(name, path, content, mime_type_for(name),
                   hashlib.sha256(content).hexdigest(), location)

    @property
    def size(self) -> int:
        return len(self.content)


def mime_type_for(name: str) -> str:
    """The MIME type of a file name; `application/octet-stream` when it is not known."""
    suffix = PurePosixPath(name).suffix.lower()
    return _MIME_BY_SUFFIX.get(suffix) or mimetypes.guess_type(name)[0] \
        or "application/octet-stream"


class DocumentRepository(ABC):
    """Where supporting documents are kept; see the module docstring."""

    @abstractmethod
    def list(self, pattern: str) -> list[DocumentRef]:
        """Files whose path matches `pattern` (a filled-in layout), sorted by path.

        Raises:
            RepositoryError: The repository cannot be read at all.
        """

    @abstractmethod
    def read(self, ref: DocumentRef) -> RepositoryDocument:
        """The bytes of a file `list` returned.

        Raises:
            RepositoryError: The file cannot be read (gone since it was listed, denied).
        """

    @abstractmethod
    def describe(self, pattern: str) -> str:
        """Where `pattern` is looked for, for a person: a folder path or an s3:// URL."""

    def find(self, pattern: str) -> list[RepositoryDocument]:
        """Every file matching `pattern`, read."""
        return [self.read(ref) for ref in self.list(pattern)]


def _split(pattern: str) -> tuple[str, str]:
    """`a/b/*.pdf` -> (`a/b`, `*.pdf`); the layout has refused `..`, roots and globs in folders."""
    path = PurePosixPath(pattern)
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise ValueError(f"layout pattern {pattern!r} must be a relative path without '..'")
    folder = str(path.parent)
    return ("" if folder == "." else folder), path.name


def _matches(name: str, glob: str) -> bool:
    """Case-insensitive match of a file name, so `*.pdf` also finds `MSA.PDF`; no dot files."""
    return not name.startswith(".") and fnmatch.fnmatchcase(name.lower(), glob.lower())


class LocalRepository(DocumentRepository):
    """A folder (on disk or a mounted share) laid out as the rules' patterns say."""

    def __init__(self, folder: Path | str):
        self.root = Path(folder).resolve()

    def __repr__(self) -> str:
        return f"LocalRepository({str(self.root)!r})"

    def describe(self, pattern: str) -> str:
        return str(self.root / pattern)

    def list(self, pattern: str) -> list[DocumentRef]:
        folder, glob = _split(pattern)
        if not self.root.is_dir():
            raise RepositoryError(
                f"the attachment repository {self.root} is not a folder: create it or point "
                "Q2C_ATTACHMENTS at the folder (or s3://bucket/prefix) holding the documents"
            )
        directory = self.root / folder
        if not directory.is_dir():
            return []
        found = []
        for entry in sorted(directory.iterdir()):
            if not _matches(entry.name, glob):
                continue
            real = entry.resolve()
            if not real.is_relative_to(self.root):
                log.warning("attachment repository: %s leads outside %s and is ignored",
                            entry, self.root)
                continue
            if real.is_file():
                relative = str(PurePosixPath(folder) / entry.name) if folder else entry.name
                found.append(DocumentRef(relative, real.stat().st_size))
        return found

    def read(self, ref: DocumentRef) -> RepositoryDocument:
        _split(ref.path)
        path = (self.root / ref.path).resolve()
        if not path.is_relative_to(self.root):
            raise RepositoryError(f"{ref.path} leads outside the repository {self.root}")
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise RepositoryError(f"{path} could not be read: {exc}") from exc
        return RepositoryDocument.of(ref.name, ref.path, content, str(path))


class S3Repository(DocumentRepository):
    """An S3 bucket (or any S3-compatible store) under a key prefix, read with boto3.

    Args:
        bucket: The bucket name.
        prefix: Key prefix of the repository root (`supporting-docs/`); may be empty.
        client: A boto3 S3 client; one is built from `endpoint_url` and `region` when None.
        endpoint_url: An S3-compatible endpoint (MinIO, Ceph, a test server); AWS when None.
        region: The bucket's region.
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any = None,
                 endpoint_url: str | None = None, region: str | None = None):
        if not bucket or "/" in bucket:
            raise ValueError(f"S3 bucket name {bucket!r} is not a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client(
            "s3", region_name=region, endpoint_url=endpoint_url,
            config=Config(retries={"total_max_attempts": 3}, connect_timeout=10,
                          read_timeout=60,
                          s3={"addressing_style": "path"} if endpoint_url else {}),
        )

    def __repr__(self) -> str:
        return f"S3Repository('s3://{self.bucket}/{self.prefix}')"

    def describe(self, pattern: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{pattern}"

    def list(self, pattern: str) -> list[DocumentRef]:
        folder, glob = _split(pattern)
        key_prefix = f"{self.prefix}{folder}/" if folder else self.prefix
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key_prefix, Delimiter="/")
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(key_prefix):]
                    if name and _matches(name, glob):
                        relative = f"{folder}/{name}" if folder else name
                        found.append(DocumentRef(relative, int(item["Size"])))
        except (ClientError, BotoCoreError) as exc:
            raise RepositoryError(
                f"the attachment repository s3://{self.bucket}/{self.prefix} could not be "
                f"listed ({_aws_error(exc)}); check Q2C_ATTACHMENTS, the bucket and the "
                "credentials"
            ) from exc
        return sorted(found, key=lambda ref: ref.path)

    def read(self, ref: DocumentRef) -> RepositoryDocument:
        _split(ref.path)
        key = f"{self.prefix}{ref.path}"
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            content = reply["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise RepositoryError(
                f"s3://{self.bucket}/{key} could not be read ({_aws_error(exc)})"
            ) from exc
        return RepositoryDocument.of(ref.name, ref.path, content, f"s3://{self.bucket}/{key}")


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    return str(exc)


def open_repository(location: str | Path, endpoint_url: str | None = None,
                    region: str | None = None) -> DocumentRepository:
    """The repository at `location`: `s3://bucket/prefix`, `aem:/content/dam/<folder>` (AEM
    Assets, `q2c.content.cms.aem_assets`), or else a folder path."""
    text = str(location)
    if text.startswith("aem:"):
        from q2c.content.cms.aem_assets import open_aem_repository  # it imports this module

        return open_aem_repository(text)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://"):].partition("/")
        return S3Repository(bucket, prefix, endpoint_url=endpoint_url, region=region)
    return LocalRepository(Path(text))

"""Dataset files on local storage: streamed uploads with their digest, and ``file://`` URIs.

Why a custom upload handler: Django's default handlers buffer small uploads in memory and write
large ones to a temporary file, and the digest would then need a second pass. This handler writes
each chunk straight to a staging file under ``STORAGE_DIR/datasets/.incoming/`` while feeding the
SHA-256, and stops the upload the moment it passes ``GOVAUDIT_MAX_UPLOAD_BYTES``, deleting what
it wrote. The staged file keeps the uploader's file name (sanitised) so that detector messages
name the file the person knows; once accepted it moves to ``datasets/<sha256>.<ext>``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from governance.errors import DomainError, ValidationFailed

KNOWN_SUFFIXES = (".csv", ".parquet", ".pq")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_CHUNK = 1024 * 1024


class UploadTooLarge(DomainError):
    """The upload passed the configured size limit; answered as 413."""

    status_code = 413
    default_code = "too_large"


def datasets_dir() -> Path:
    return Path(settings.STORAGE_DIR) / "datasets"


def import_root() -> Path:
    """Where ``register-file`` may read from: ``GOVAUDIT_DATASET_IMPORT_ROOT``, else STORAGE_DIR."""
    return Path(getattr(settings, "GOVAUDIT_DATASET_IMPORT_ROOT", None) or settings.STORAGE_DIR).resolve()


def max_upload_bytes() -> int:
    return int(settings.GOVAUDIT_MAX_UPLOAD_BYTES)


def safe_filename(name: str) -> str:
    """A file name with no directory part and only harmless characters."""
    base = _SAFE_NAME.sub("_", os.path.basename(name or "")).strip("._") or "upload"
    return base[:120]


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def path_from_uri(uri: str) -> Path | None:
    """The local path of a ``file://`` URI, or None for any other scheme (s3://, https://...)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


@dataclass
class StagedFile:
    """An uploaded file written to staging, with its digest and size."""

    path: Path
    original_name: str
    sha256: str
    size: int


class StreamingHashUploadHandler(FileUploadHandler):
    """Write uploaded files to staging chunk by chunk, hashing as they go, within a size limit.

    Non-file fields still go through Django's normal parsing (and its DATA_UPLOAD_MAX_MEMORY_SIZE).
    ``cleanup()`` must be called when the view is done: it deletes every staged file that was not
    moved to its final place, including the partial file of an upload that failed midway.
    """

    chunk_size = 256 * 1024

    def __init__(self, request: Any = None, *, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = max_upload_bytes() if limit is None else limit
        self.staged: list[StagedFile] = []
        self._dir: Path | None = None
        self._fh: IO[bytes] | None = None
        self._hash: Any = None
        self._written = 0
        self._path: Path | None = None

    def handle_raw_input(self, input_data: Any, META: Any, content_length: int, boundary: Any,
                         encoding: str | None = None) -> None:
        # A declared length far past the limit is refused before a byte is read. The margin
        # leaves room for the multipart framing and the small text fields.
        if content_length and content_length > self.limit + 64 * 1024:
            raise self._too_large()
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self._fh is not None:
            raise ValidationFailed("Send exactly one file per upload, in the 'file' field.", code="one_file_only")
        self._dir = datasets_dir() / ".incoming" / uuid.uuid4().hex
        self._dir.mkdir(parents=True, exist_ok=True)
        self._path = self._dir / safe_filename(self.file_name or "upload")
        self._fh = open(self._path, "wb")  # noqa: SIM115 - closed in file_complete / cleanup
        self._hash = hashlib.sha256()
        self._written = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self._fh is not None
        self._written += len(raw_data)
        if self._written > self.limit:
            self.cleanup()
            raise self._too_large()
        self._fh.write(raw_data)
        self._hash.update(raw_data)
        return None  # consumed: no later handler sees the bytes

    def file_complete(self, file_size: int) -> Any:
        assert self._fh is not None and self._path is not None
        self._fh.close()
        self.staged.append(StagedFile(self._path, self.file_name or "upload", self._hash.hexdigest(), self._written))
        # Django wants an UploadedFile-like object in request.FILES; the view reads ``staged``.
        from django.core.files.uploadedfile import UploadedFile

        return UploadedFile(file=None, name=self.file_name, content_type=self.content_type, size=self._written)

    def _too_large(self) -> UploadTooLarge:
        limit = self.limit
        return UploadTooLarge(
            f"The upload is larger than this service accepts ({limit} bytes, about {limit / 1024**2:.0f} MiB). "
            "Split the dataset, sample it, or convert it to Parquet (usually several times smaller).",
            details={"limit_bytes": limit})

    def cleanup(self) -> None:
        """Delete every staging directory this handler created (moved files are already gone)."""
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        for directory in {s.path.parent for s in self.staged} | ({self._dir} if self._dir else set()):
            shutil.rmtree(directory, ignore_errors=True)


def store_by_digest(staged: StagedFile, fmt: str) -> tuple[Path, bool]:
    """Move a staged file to ``datasets/<sha256>.<ext>``; returns (final path, created).

    The same bytes always land at the same path, so a second upload of identical data reuses the
    stored file (``created`` False) and the caller must not delete it on a later failure.
    """
    ext = ".parquet" if fmt == "parquet" else ".csv"
    final = datasets_dir() / f"{staged.sha256}{ext}"
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        staged.path.unlink(missing_ok=True)
        return final, False
    os.replace(staged.path, final)
    return final, True


def sha256_of(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in chunks (any size, bounded memory)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def resolve_import_path(raw: str) -> Path:
    """A path under the import root, or a 400: no ``..`` or symlink escapes to other files."""
    root = import_root()
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise ValidationFailed(f"path must be a file under {root} (the directory this service imports from).",
                               code="path_not_allowed", details={"root": str(root)})
    if not resolved.is_file():
        raise ValidationFailed(f"No readable file at {resolved}; copy the dataset under {root} first.",
                               code="file_not_found")
    return resolved

"""Plain values passed between the web layer and the storage backends."""

from __future__ import annotations

from dataclasses import dataclass, field

from s3proxy.acl import AccessControl

DEFAULT_CONTENT_TYPE = "binary/octet-stream"

# Headers S3 stores with an object and returns on GET/HEAD (besides x-amz-meta-*).
STORED_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "Content-Disposition",
    "Content-Language",
    "Cache-Control",
    "Expires",
)


@dataclass(frozen=True)
class ObjectAttributes:
    """What a client sets on an object when writing it."""

    content_type: str = DEFAULT_CONTENT_TYPE
    # Other stored headers by their canonical name, e.g. {"Cache-Control": "no-cache"}.
    headers: dict[str, str] = field(default_factory=dict)
    # User metadata without the x-amz-meta- prefix, names lower-cased as S3 does.
    metadata: dict[str, str] = field(default_factory=dict)
    # Owner and grants; None where no user was known (open mode, foreign files).
    acl: AccessControl | None = None
    # Verified flexible checksums, {"x-amz-checksum-crc32": "<base64>"}. Filled in
    # once the body has been verified, before the writer's finish() stores it.
    checksums: dict[str, str] = field(default_factory=dict)
    # Object tags (S3 tagging), in the order the client gave them.
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "metadata": dict(self.metadata),
            "acl": self.acl.to_json() if self.acl is not None else None,
            "checksums": dict(self.checksums),
            "tags": dict(self.tags),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ObjectAttributes:
        headers = data.get("headers") or {}
        metadata = data.get("metadata") or {}
        checksums = data.get("checksums") or {}
        tags = data.get("tags") or {}
        assert isinstance(headers, dict) and isinstance(metadata, dict)
        assert isinstance(checksums, dict) and isinstance(tags, dict)
        return cls(
            content_type=str(data.get("content_type") or DEFAULT_CONTENT_TYPE),
            headers={str(k): str(v) for k, v in headers.items()},
            metadata={str(k): str(v) for k, v in metadata.items()},
            acl=AccessControl.from_json(data.get("acl")),
            checksums={str(k): str(v) for k, v in checksums.items()},
            tags={str(k): str(v) for k, v in tags.items()},
        )


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object's identity and attributes, as HEAD and listings report it."""

    key: str
    size: int
    etag: str  # hex MD5, or "<hex>-<parts>" for multipart objects; never quoted
    last_modified: float  # seconds since the epoch
    attributes: ObjectAttributes = field(default_factory=ObjectAttributes)
    storage_class: str = "STANDARD"
    # Sizes of the parts of an object made by a multipart upload, for partNumber reads.
    part_sizes: tuple[int, ...] = ()

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


@dataclass(frozen=True)
class BucketInfo:
    name: str
    creation_date: float
    acl: AccessControl | None = None


@dataclass(frozen=True)
class ListPage:
    """One page of a listing, in S3 order: ``objects`` and ``common_prefixes`` together
    hold at most max-keys entries. ``next_marker`` is the last key or prefix returned."""

    objects: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range already resolved against the object's size."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of a multipart upload."""

    number: int
    size: int
    etag: str  # hex MD5 of the part, never quoted
    last_modified: float
    # Verified flexible checksums of the part, {"x-amz-checksum-crc32": "<base64>"}.
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


@dataclass(frozen=True)
class UploadInfo:
    """A multipart upload in progress."""

    bucket: str
    key: str
    upload_id: str
    initiated: float
    attributes: ObjectAttributes = field(default_factory=ObjectAttributes)


@dataclass(frozen=True)
class PartsPage:
    parts: list[PartInfo]
    is_truncated: bool
    next_marker: int | None


@dataclass(frozen=True)
class UploadsPage:
    """Uploads in (key, initiation) order; keys past a delimiter rolled up."""

    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None

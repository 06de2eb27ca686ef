"""Rules of multipart uploads that every backend applies the same way."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping

from s3proxy.checksums import composite
from s3proxy.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from s3proxy.model import PartInfo, UploadInfo, UploadsPage

MAX_PART_NUMBER = 10000
S3_MIN_PART_SIZE = 5 * 1024 * 1024
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{48}$")


def new_upload_id() -> str:
    """The initiation time, then 128 random bits: unguessable, safe as a file name,
    and sorting by ID sorts by initiation (the order ListMultipartUploads uses)."""
    return f"{time.time_ns():016x}{secrets.token_hex(16)}"


def check_upload_id(upload_id: str) -> None:
    """An ID we could not have issued is NoSuchUpload before it reaches a path."""
    if not _UPLOAD_ID_RE.match(upload_id):
        raise NoSuchUpload(UploadId=upload_id)


def select_parts(
    requested: list[tuple[int, str]], stored: Mapping[int, PartInfo], min_part_size: int
) -> list[PartInfo]:
    """The stored parts a CompleteMultipartUpload names, checked as S3 checks them."""
    if not requested:
        raise InvalidPart("You must specify at least one part.")
    chosen: list[PartInfo] = []
    previous = 0
    for number, etag in requested:
        if number <= previous:
            raise InvalidPartOrder()
        previous = number
        part = stored.get(number)
        if part is None or part.etag != etag.strip().strip('"').lower():
            raise InvalidPart(PartNumber=str(number), ETag=etag)
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < min_part_size:
            raise EntityTooSmall(
                ProposedSize=str(part.size),
                MinSizeAllowed=str(min_part_size),
                PartNumber=str(part.number),
                ETag=part.quoted_etag,
            )
    return chosen


def multipart_etag(parts: Iterable[PartInfo]) -> str:
    """S3's ETag of a multipart object: MD5 of the binary part MD5s, then -N."""
    digests = [bytes.fromhex(p.etag) for p in parts]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def page_uploads(
    uploads: Iterable[UploadInfo],
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadsPage:
    """One ListMultipartUploads page of ``uploads``, in (key, upload ID) order."""
    chosen: list[UploadInfo] = []
    prefixes: list[str] = []
    truncated = False
    last_prefix = None
    for upload in sorted(uploads, key=lambda u: (u.key, u.upload_id)):
        if not upload.key.startswith(prefix):
            continue
        if upload_id_marker and key_marker:
            if upload.key < key_marker or (
                upload.key == key_marker and upload.upload_id <= upload_id_marker
            ):
                continue
        elif upload.key <= key_marker:
            continue
        if delimiter:
            cut = upload.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = upload.key[: cut + len(delimiter)]
                if common == last_prefix or common <= key_marker:
                    continue
                if len(chosen) + len(prefixes) == max_uploads:
                    truncated = True
                    break
                prefixes.append(common)
                last_prefix = common
                continue
        if len(chosen) + len(prefixes) == max_uploads:
            truncated = True
            break
        chosen.append(upload)
    next_key = next_id = None
    if truncated:
        if chosen and (not prefixes or chosen[-1].key > prefixes[-1]):
            next_key, next_id = chosen[-1].key, chosen[-1].upload_id
        elif prefixes:
            next_key = prefixes[-1]
    return UploadsPage(chosen, prefixes, truncated, next_key, next_id)


def composite_checksums(parts: list[PartInfo]) -> dict[str, str]:
    """Composite checksums for every algorithm all ``parts`` have a checksum of."""
    if not parts:
        return {}
    names = set(parts[0].checksums)
    for part in parts[1:]:
        names &= set(part.checksums)
    return {
        name: composite(name[len("x-amz-checksum-") :], [p.checksums[name] for p in parts])
        for name in sorted(names)
    }

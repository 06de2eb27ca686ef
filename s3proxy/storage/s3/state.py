"""What the upstream S3 API has no place for, kept as small JSON objects in one
upstream bucket of this deployment's own (``<prefix>s3proxy-state``):

- ``buckets/<bucket>``: a bucket's ACL (S3 buckets carry no metadata);
- ``uploads/<bucket>/<upload id>``: a multipart upload's key, upstream upload ID and
  attributes (ListParts does not return them);
- ``parts/<bucket>/<sha256 of key>``: the part sizes of an object a multipart upload
  made, with its ETag (HEAD does not return them).

Nothing here holds object data; every daemon sharing the upstream sees the same state."""

from __future__ import annotations

import json
from typing import Any

from s3proxy.errors import BucketAlreadyExists, BucketAlreadyOwnedByYou, NoSuchBucket, NoSuchKey
from s3proxy.storage.s3 import upstream_xml
from s3proxy.storage.s3.client import UpstreamClient

STATE_BUCKET = "s3proxy-state"


class StateStore:
    def __init__(self, client: UpstreamClient, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._exists = False

    async def _ensure(self) -> None:
        try:
            await self.client.fetch("PUT", self.bucket)
        except (BucketAlreadyOwnedByYou, BucketAlreadyExists):
            pass
        self._exists = True

    async def put(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(value, separators=(",", ":")).encode("utf-8")
        headers = {"content-type": "application/json"}
        if not self._exists:
            await self._ensure()
        try:
            await self.client.fetch("PUT", self.bucket, key, headers=headers, body=body)
        except NoSuchBucket:  # removed behind our back: make it again
            await self._ensure()
            await self.client.fetch("PUT", self.bucket, key, headers=headers, body=body)

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            _, body = await self.client.fetch("GET", self.bucket, key, not_found=NoSuchKey)
        except (NoSuchKey, NoSuchBucket):
            return None
        value = json.loads(body)
        return value if isinstance(value, dict) else None

    async def delete(self, key: str) -> None:
        try:
            await self.client.fetch("DELETE", self.bucket, key)
        except NoSuchBucket:
            pass

    async def keys(self, prefix: str) -> list[str]:
        """Every state key under ``prefix``."""
        found: list[str] = []
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
            if token:
                query.append(("continuation-token", token))
            try:
                _, body = await self.client.fetch("GET", self.bucket, query=query)
            except NoSuchBucket:
                return found
            page = upstream_xml.list_objects_v2(body)
            found += [o.key for o in page.objects]
            if page.next_token is None:
                return found
            token = page.next_token

"""Settings the web layer needs, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "/api/v1/s3"
DEFAULT_LISTEN = "tcp:39999:interface=127.0.0.1"


@dataclass(frozen=True)
class Settings:
    prefix: str = DEFAULT_PREFIX
    region: str = "us-east-1"
    # The owner every bucket and object reports until users arrive with authentication.
    owner_id: str = "0" * 64
    owner_name: str = "s3proxy"
    max_xml_bytes: int = 2 * 1024 * 1024
    # Every part of a multipart upload but the last must be this big (S3: 5 MiB).
    min_part_size: int = 5 * 1024 * 1024
    # A CompleteMultipartUpload still running after this many seconds answers 200 at
    # once and then sends a space every ``keepalive_interval`` seconds until it ends.
    keepalive_delay: float = 1.0
    keepalive_interval: float = 5.0
    # --virtual-host: requests to bucket.<domain> name their bucket in Host.
    virtual_host: str | None = None

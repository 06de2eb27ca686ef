"""Virtual-hosted-style requests: ``bucket.DOMAIN[:port]`` names the bucket in the Host
header and the path is the key (``--virtual-host DOMAIN``). A Host that is the domain
itself, or any other name (an IP address, say), is a path-style request."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from twisted.python import usage

from s3proxy.auth.request import strip_prefix
from s3proxy.errors import InvalidURI
from s3proxy.names import is_valid_bucket_name

OPTION = [
    "virtual-host",
    None,
    None,
    "Domain of virtual-hosted-style requests: Host bucket.DOMAIN names the bucket "
    "(path-style requests keep working).",
]


def check_option(domain: str | None) -> str | None:
    if not domain:
        return None
    domain = domain.strip().lower().rstrip(".")
    if not domain or "/" in domain or ":" in domain or domain.startswith("."):
        raise usage.UsageError("--virtual-host must be a domain name, e.g. s3.example.com")
    return domain


def host_bucket(host: str | None, domain: str | None) -> str | None:
    """The bucket a Host header names under ``domain``, or None (path style)."""
    if not host or not domain:
        return None
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal
        return None
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    suffix = "." + domain
    if not name.endswith(suffix) or len(name) == len(suffix):
        return None
    bucket = name[: -len(suffix)]
    return bucket if is_valid_bucket_name(bucket) else None


def split_virtual_target(raw_path: bytes, prefix: str, bucket: str) -> tuple[str, str | None]:
    """(bucket, key) of a virtual-hosted request: the whole path (under ``prefix`` or
    at the root) is the key."""
    key = decode_path(path_under(raw_path, prefix))
    return bucket, key or None


def path_under(raw_path: bytes, prefix: str) -> bytes:
    """The raw request path under ``prefix`` (or at the root), without its first ``/``."""
    path = strip_prefix(raw_path, prefix) or raw_path
    if not path.startswith(b"/"):
        raise InvalidURI()
    return path[1:]


def decode_path(raw: bytes) -> str:
    """Percent-decoded UTF-8 (``%2F`` stays part of the name); InvalidURI if not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidURI() from None

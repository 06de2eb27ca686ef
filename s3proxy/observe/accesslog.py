"""The access log: one ``twisted.logger`` event per request, namespace
``s3proxy.access``, once its response has finished or its connection was lost."""

from __future__ import annotations

from urllib.parse import quote

from twisted.logger import Logger

ACCESS_NAMESPACE = "s3proxy.access"

# The fields of an access event, in the order the JSON log writes them.
ACCESS_FIELDS = (
    "request_id",
    "remote",
    "user",
    "method",
    "operation",
    "bucket",
    "key",
    "status",
    "error_code",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "completed",
)

# The text log's line. twisted.logger formats ``log_format`` with a pure-Python
# formatter, ~3 us per field (30 us for this line: most of the access log's cost);
# so the format has one field, a callable that renders the line with an f-string,
# and only when a text observer asks (the JSON log never does).
TEXT_FORMAT = "{text()}"

access_log = Logger(namespace=ACCESS_NAMESPACE)


def display_target(bucket: str | None, key: str | None) -> str:
    """``/bucket/key`` for the text line; a key with blanks or control characters
    is percent-encoded (as S3's own access logs write keys), so that the line stays
    one line and splits on blanks."""
    if bucket is None:
        return "/"
    if key is None:
        return "/" + bucket
    if key.isprintable() and " " not in key:
        return f"/{bucket}/{key}"
    return f"/{bucket}/{quote(key, safe='/')}"


def emit_access(
    *,
    request_id: str,
    remote: str,
    user: str,
    method: str,
    operation: str,
    bucket: str | None,
    key: str | None,
    status: int,
    error_code: str | None,
    bytes_in: int,
    bytes_out: int,
    duration_ms: float,
    completed: bool,
) -> None:
    def text() -> str:
        # ``target`` and ``error`` are never empty and have no blanks: the line
        # splits on blanks.
        target = display_target(bucket, key)
        error = error_code or ("-" if completed else "ConnectionLost")
        return (
            f"{remote} {user} {method} {target} {operation} {status} {error} "
            f"in={bytes_in} out={bytes_out} {duration_ms}ms id={request_id}"
        )

    access_log.info(
        TEXT_FORMAT,
        request_id=request_id,
        remote=remote,
        user=user,
        method=method,
        operation=operation,
        bucket=bucket,
        key=key,
        status=status,
        error_code=error_code,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        duration_ms=duration_ms,
        completed=completed,
        text=text,
    )

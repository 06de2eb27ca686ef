"""The S3 error a client should see for an upstream answer that is not a success."""

from __future__ import annotations

from lxml import etree

from s3proxy import errors
from s3proxy.errors import S3Error, ServiceUnavailable

# Upstream codes whose class in s3proxy.errors has another name.
_RENAMED = {"NotImplemented": errors.NotImplementedError_}


def error_class(code: str) -> type[S3Error] | None:
    if code in _RENAMED:
        return _RENAMED[code]
    found = getattr(errors, code, None)
    if isinstance(found, type) and issubclass(found, S3Error) and found.code == code:
        return found
    return None


def parse_error(status: int, body: bytes) -> tuple[str, str, dict[str, str]]:
    """(code, message, other fields) of an upstream ``<Error>`` document; the code is
    empty when the body is not one (HEAD answers have no body)."""
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return "", "", {}
    if root is None or etree.QName(root).localname != "Error":
        return "", "", {}
    values = {etree.QName(child).localname: child.text or "" for child in root}
    code = values.pop("Code", "")
    message = values.pop("Message", "")
    for noise in ("RequestId", "HostId", "Resource"):
        values.pop(noise, None)
    return code, message, values


def map_error(status: int, body: bytes, not_found: type[S3Error] | None = None) -> S3Error:
    """An upstream failure as our S3Error. ``not_found`` names the error of a bodiless
    404 (HEAD). A 5xx is ServiceUnavailable: the upstream's trouble, not ours."""
    if status >= 500:
        return ServiceUnavailable()
    code, message, fields = parse_error(status, body)
    known = error_class(code) if code else None
    if known is not None:
        return known(message or None, **fields)
    if status == 404 and not_found is not None:
        return not_found()
    if code:
        # An error we have no class for: keep the upstream's code and status.
        return errors._error(code, status, message)(message or None, **fields)
    if status == 412:
        return errors.PreconditionFailed()
    if status == 403:
        return errors.AccessDenied()
    return errors.InvalidRequest(f"The upstream store answered {status}.")

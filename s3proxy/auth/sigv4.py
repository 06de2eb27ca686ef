"""Who signed a request: the entry point of authentication, and SigV4 verification.

``authenticate`` finds the one auth mechanism a request uses (Authorization header,
SigV4 presigned query, SigV2 header or query; SigV2 lives in ``sigv2``) and proves it
or raises the S3 error AWS would send. S3 signs the path exactly as sent (no
normalisation, no double encoding); a client that encoded its path or query
differently from what it put on the wire is met with a few equivalent spellings of the
same resource, never with a different resource.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from s3proxy.auth import canonical, sigv2
from s3proxy.auth.credentials import User
from s3proxy.auth.request import (
    UNSIGNED_PAYLOAD,
    AuthResult,
    SignedRequest,
    iso8601,
    query_params,
    spaced_hex,
    strip_prefix,
    wire_bytes,
)
from s3proxy.auth.streaming import ChunkVerifier
from s3proxy.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    NotImplementedError_,
    RequestTimeTooSkewed,
    S3Error,
    SignatureDoesNotMatch,
)

__all__ = ["AuthResult", "ChunkVerifier", "SignedRequest", "authenticate"]

MAX_EXPIRES = 7 * 24 * 3600
MAX_SKEW = 15 * 60
SERVICE = "s3"
STREAMING_PAYLOADS = frozenset(
    {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
)
_ECDSA_PAYLOADS = frozenset(
    {"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"}
)
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
_SIGNED_ANYWAY = frozenset({"x-amz-date", "x-amz-content-sha256"})
_COMPONENTS = frozenset({"Credential", "SignedHeaders", "Signature"})
_CREDENTIAL_FORM = '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'
_NO_DATE = "AWS authentication requires a valid Date or x-amz-date header"
_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)


def authenticate(
    req: SignedRequest,
    users: Mapping[str, User],
    region_check: bool = False,
    *,
    prefix: str = "",
    region: str = "us-east-1",
) -> AuthResult | None:
    """The proven signer of ``req``, or None when it carries no credentials at all.

    ``region_check`` refuses a credential scope naming another region than ``region``
    (by default any region is accepted, as single-region gateways usually do).
    ``prefix`` is the path the API is also served under; a signature over the path
    without it is accepted too (it names the same resource).
    """
    authorization = req.header("authorization")
    params = query_params(req.raw_query)
    v4_query = "X-Amz-Algorithm" in params
    v2_query = "AWSAccessKeyId" in params or "Signature" in params
    mechanisms = (authorization is not None) + v4_query + v2_query
    if mechanisms == 0:
        return None
    if mechanisms > 1:
        raise InvalidArgument(
            _ONE_MECHANISM, ArgumentName="Authorization", ArgumentValue=authorization or ""
        )
    scope_rules = _ScopeRules(region_check, region)
    if v4_query:
        claim = _query_claim(req, params, scope_rules)
        return _verify(req, users, claim, prefix)
    if v2_query:
        return sigv2.authenticate_query(req, users, params, prefix)
    assert authorization is not None
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm == canonical.ALGORITHM:
        return _verify(req, users, _header_claim(req, rest, scope_rules), prefix)
    if algorithm == "AWS":
        return sigv2.authenticate_header(req, users, rest, prefix)
    raise InvalidArgument(
        "Unsupported Authorization Type", ArgumentName="Authorization", ArgumentValue=authorization
    )


@dataclass(frozen=True)
class _ScopeRules:
    region_check: bool
    region: str


@dataclass(frozen=True)
class _Claim:
    """What a SigV4 request says about itself, checked for form but not yet proven."""

    access_key: str
    scope: str  # yyyymmdd/region/s3/aws4_request
    amz_date: str
    signed_headers: str
    signature: str
    payloads: tuple[str, ...]  # what the client may have signed, most likely first
    presigned: bool


def _header_claim(req: SignedRequest, rest: str, rules: _ScopeRules) -> _Claim:
    lead = "The authorization header is malformed; "
    error = AuthorizationHeaderMalformed
    components: dict[str, str] = {}
    for part in (p.strip() for p in rest.split(",")):
        if not part:
            continue
        name, equals, value = part.partition("=")
        if not equals or not value.strip() or name not in _COMPONENTS or name in components:
            raise error(f'{lead}the authorization component "{part}" is malformed.')
        components[name] = value.strip()
    if len(components) != len(_COMPONENTS):
        raise error(
            f"{lead}the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature."
        )
    credential = _parse_credential(components["Credential"], lead, error)
    signed = _signed_headers(components["SignedHeaders"], lead, error)
    amz_date, date_source = _header_date(req)
    access_key, scope = _check_scope(credential, amz_date, rules, lead, error)
    _require_signed(req, signed, all_amz=True)
    if abs(req.now - _epoch(amz_date)) > MAX_SKEW:
        raise RequestTimeTooSkewed(
            RequestTime=date_source,
            ServerTime=iso8601(req.now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW * 1000),
        )
    return _Claim(
        access_key=access_key,
        scope=scope,
        amz_date=amz_date,
        signed_headers=components["SignedHeaders"],
        signature=components["Signature"],
        payloads=(_header_payload(req),),
        presigned=False,
    )


def _query_claim(req: SignedRequest, params: dict[str, str], rules: _ScopeRules) -> _Claim:
    lead = "Error parsing the X-Amz-Credential parameter; "
    error = AuthorizationQueryParametersError
    if any(not params.get(name) for name in _QUERY_PARAMS):
        raise error()
    if params["X-Amz-Algorithm"] != canonical.ALGORITHM:
        raise error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    amz_date = params["X-Amz-Date"]
    if not _valid_amz_date(amz_date):
        raise error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    expires_text = params["X-Amz-Expires"]
    if not re.fullmatch(r"-?[0-9]+", expires_text):
        raise error("X-Amz-Expires should be a number")
    if expires_text.startswith("-"):
        raise error("X-Amz-Expires must be non-negative")
    digits = expires_text.lstrip("0") or "0"
    expires = int(digits) if len(digits) <= 7 else MAX_EXPIRES + 1  # no 4300-digit ints
    if expires > MAX_EXPIRES:
        raise error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
    credential = _parse_credential(params["X-Amz-Credential"], lead, error)
    access_key, scope = _check_scope(credential, amz_date, rules, lead, error)
    signed_text = params["X-Amz-SignedHeaders"]
    signed = _signed_headers(signed_text, "", error)
    _require_signed(req, signed, all_amz=False)
    signed_at = _epoch(amz_date)
    if req.now > signed_at + expires:
        raise AccessDenied(
            "Request has expired",
            **{
                "X-Amz-Expires": expires_text,
                "Expires": iso8601(signed_at + expires),
                "ServerTime": iso8601(req.now),
            },
        )
    if signed_at - req.now > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    # What a presigner signed is UNSIGNED-PAYLOAD, unless it knew the header would be sent.
    payload = req.header("x-amz-content-sha256") or UNSIGNED_PAYLOAD
    return _Claim(
        access_key=access_key,
        scope=scope,
        amz_date=amz_date,
        signed_headers=signed_text,
        signature=params["X-Amz-Signature"],
        payloads=tuple(dict.fromkeys((payload, UNSIGNED_PAYLOAD))),
        presigned=True,
    )


def _parse_credential(text: str, lead: str, error: type[S3Error]) -> list[str]:
    """``<key>/<yyyymmdd>/<region>/<service>/<terminal>``, checked for shape only."""
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or not all(parts) or not re.fullmatch(r"\d{8}", parts[1]):
        raise error(f"{lead}the Credential is mal-formed; expecting {_CREDENTIAL_FORM}.")
    return parts


def _check_scope(
    parts: list[str], amz_date: str, rules: _ScopeRules, lead: str, error: type[S3Error]
) -> tuple[str, str]:
    """(access key, scope) once the scope agrees with the date and names S3."""
    access_key, date, region, service, terminal = parts
    if date != amz_date[:8]:
        raise error(
            f'{lead}Invalid credential date "{date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".'
        )
    if rules.region_check and region != rules.region:
        raise error(
            f"{lead}the region '{region}' is wrong; expecting '{rules.region}'",
            Region=rules.region,
        )
    if service != SERVICE:
        raise error(f'{lead}incorrect service "{service}". This endpoint belongs to "{SERVICE}".')
    if terminal != canonical.TERMINAL:
        raise error(
            f'{lead}incorrect terminal "{terminal}". This endpoint uses "{canonical.TERMINAL}".'
        )
    return access_key, "/".join(parts[1:])


def _signed_headers(text: str, lead: str, error: type[S3Error]) -> list[str]:
    names = text.split(";")
    if not all(names) or any(n != n.strip() for n in names):
        if error is AuthorizationHeaderMalformed:
            raise error(f'{lead}the authorization component "SignedHeaders={text}" is malformed.')
        raise error(f'X-Amz-SignedHeaders is malformed: "{text}"')
    return [n.lower() for n in names]


def _require_signed(req: SignedRequest, signed: list[str], all_amz: bool) -> None:
    """S3 insists on signing host, and (header auth) every x-amz-* header sent. The two
    whose values are part of the string to sign anyway need not be listed."""
    missing = [] if "host" in signed else ["host"]
    if all_amz:
        missing += sorted(
            name
            for name in req.header_names()
            if name.startswith("x-amz-") and name not in signed and name not in _SIGNED_ANYWAY
        )
    if missing:
        raise AccessDenied(
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(missing),
        )


def _header_date(req: SignedRequest) -> tuple[str, str]:
    """(yyyymmddThhmmssZ, the header text) from x-amz-date, or else Date."""
    amz_date = req.header("x-amz-date")
    if amz_date is not None:
        if _valid_amz_date(amz_date.strip()):
            return amz_date.strip(), amz_date
        raise AccessDenied(_NO_DATE)
    date = req.header("date")
    if date:
        try:
            parsed = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = None
        if parsed is not None:  # "-0000" (as botocore sends) parses without a zone: UTC
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(parsed.timestamp())), date
    raise AccessDenied(_NO_DATE)


def _header_payload(req: SignedRequest) -> str:
    payload = req.header("x-amz-content-sha256")
    if payload is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    if payload in _ECDSA_PAYLOADS:
        raise NotImplementedError_(Header="x-amz-content-sha256", HeaderValue=payload)
    if payload in STREAMING_PAYLOADS or payload == UNSIGNED_PAYLOAD:
        return payload
    if _SHA256_HEX.fullmatch(payload):
        return payload
    raise InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, "
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=payload,
    )


def _valid_amz_date(text: str) -> bool:
    return _parsed_amz_date(text) is not None


def _epoch(amz_date: str) -> float:
    epoch = _parsed_amz_date(amz_date)
    if epoch is None:
        raise ValueError(amz_date)
    return epoch


@functools.lru_cache(maxsize=64)
def _parsed_amz_date(text: str) -> float | None:
    """Seconds since the epoch, or None. Remembered: a second's requests share their
    X-Amz-Date, and strptime costs more than the rest of the date handling."""
    if not _AMZ_DATE.fullmatch(text):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _verify(
    req: SignedRequest, users: Mapping[str, User], claim: _Claim, prefix: str
) -> AuthResult:
    user = users.get(claim.access_key)
    if user is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=claim.access_key)
    date, region, service, _ = claim.scope.split("/")
    key = canonical.signing_key(user.secret_key, date, region, service)
    signed = claim.signed_headers.split(";")
    headers = [
        (name, canonical.canonical_header_value(wire_bytes(v) for v in req.header_values(name)))
        for name in (n.lower() for n in signed)
    ]
    exclude = frozenset({"X-Amz-Signature"}) if claim.presigned else frozenset()
    queries = [canonical.canonical_query(req.raw_query, exclude)]
    if b"+" in req.raw_query:
        queries.append(canonical.canonical_query(req.raw_query, exclude, plus_is_space=True))
    first: tuple[bytes, str] | None = None
    provided = claim.signature.encode("utf-8", "replace")
    for payload in claim.payloads:
        for uri in _uri_spellings(req.raw_path, prefix):
            for query in queries:
                request = canonical.canonical_request(
                    req.method.upper(), uri, query, headers, claim.signed_headers, payload
                )
                to_sign = canonical.string_to_sign(claim.amz_date, claim.scope, request)
                computed = canonical.sign(key, to_sign).encode("ascii")
                if hmac.compare_digest(computed, provided):
                    return AuthResult(
                        user=user,
                        payload=payload,
                        signing_key=key,
                        scope=claim.scope,
                        amz_date=claim.amz_date,
                        seed_signature=claim.signature,
                        version=4,
                        presigned=claim.presigned,
                    )
                first = first or (request, to_sign)
    assert first is not None
    request, to_sign = first
    raise SignatureDoesNotMatch(
        AWSAccessKeyId=claim.access_key,
        StringToSign=to_sign,
        SignatureProvided=claim.signature,
        StringToSignBytes=spaced_hex(to_sign.encode("utf-8")),
        CanonicalRequest=request.decode("utf-8", "replace"),
        CanonicalRequestBytes=spaced_hex(request),
    )


def _uri_spellings(raw_path: bytes, prefix: str) -> list[bytes]:
    """The path as sent first (what S3 signs), then the same resource spelt with AWS's
    encoding, and both without the API prefix."""
    bases = [raw_path]
    stripped = strip_prefix(raw_path, prefix)
    if stripped is not None:
        bases.append(stripped)
    spellings: list[bytes] = []
    for base in bases:
        for spelling in (base, quote(unquote_to_bytes(base), safe="/").encode("ascii")):
            if spelling not in spellings:
                spellings.append(spelling)
    return spellings

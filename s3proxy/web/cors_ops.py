"""PutBucketCors, GetBucketCors, DeleteBucketCors, the OPTIONS preflight, and the CORS
headers of actual cross-origin responses (errors included), as S3 sends them."""

from __future__ import annotations

from s3proxy.cors import (
    CONFIG_NAME,
    CORS_METHODS,
    CorsRule,
    CorsRules,
    find_rule,
    rules_from_text,
    rules_to_text,
)
from s3proxy.errors import (
    BadRequest,
    CorsForbidden,
    InvalidRequest,
    MalformedXML,
    NoSuchCORSConfiguration,
    S3Error,
)
from s3proxy.names import is_valid_bucket_name
from s3proxy.web import xml
from s3proxy.web.context import S3Context, S3Response, xml_response

MAX_RULES = 100
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def parse_rules(body: bytes) -> CorsRules:
    root = xml.parse(body, "CORSConfiguration")
    rules = []
    for node in xml.children(root, "CORSRule"):
        texts = {
            name: [(c.text or "").strip() for c in xml.children(node, name)]
            for name in (
                "AllowedMethod",
                "AllowedOrigin",
                "AllowedHeader",
                "ExposeHeader",
                "ID",
                "MaxAgeSeconds",
            )
        }
        if not texts["AllowedMethod"] or not texts["AllowedOrigin"]:
            raise MalformedXML()
        for method in texts["AllowedMethod"]:
            if method not in CORS_METHODS:
                raise InvalidRequest(
                    "Found unsupported HTTP method in CORS config. Unsupported method is " + method
                )
        for name in ("AllowedOrigin", "AllowedHeader"):
            for value in texts[name]:
                if value.count("*") > 1:
                    raise InvalidRequest(f'{name} "{value}" can not have more than one wildcard.')
        max_age = [xml.integer(text) for text in texts["MaxAgeSeconds"][:1]]
        if max_age and max_age[0] is None:
            raise MalformedXML()
        rules.append(
            CorsRule(
                allowed_methods=tuple(texts["AllowedMethod"]),
                allowed_origins=tuple(texts["AllowedOrigin"]),
                allowed_headers=tuple(texts["AllowedHeader"]),
                expose_headers=tuple(texts["ExposeHeader"]),
                max_age_seconds=max_age[0] if max_age else None,
                rule_id=texts["ID"][0] if texts["ID"] else None,
            )
        )
    if not rules or len(rules) > MAX_RULES:
        raise MalformedXML()
    return tuple(rules)


def render_rules(rules: CorsRules) -> bytes:
    return xml.document(
        "CORSConfiguration",
        [
            xml.element(
                "CORSRule",
                ("ID", rule.rule_id),
                [("AllowedHeader", h) for h in rule.allowed_headers],
                [("AllowedMethod", m) for m in rule.allowed_methods],
                [("AllowedOrigin", o) for o in rule.allowed_origins],
                [("ExposeHeader", h) for h in rule.expose_headers],
                ("MaxAgeSeconds", rule.max_age_seconds),
            )
            for rule in rules
        ],
    )


async def put_bucket_cors(ctx: S3Context) -> S3Response:
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    rules = parse_rules(body)
    await ctx.storage.put_bucket_config(ctx.need_bucket(), CONFIG_NAME, rules_to_text(rules))
    return S3Response()


async def get_bucket_cors(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    rules = await bucket_rules(ctx, bucket)
    if not rules:
        raise NoSuchCORSConfiguration(BucketName=bucket)
    return xml_response(render_rules(rules))


async def delete_bucket_cors(ctx: S3Context) -> S3Response:
    await ctx.storage.put_bucket_config(ctx.need_bucket(), CONFIG_NAME, None)
    return S3Response(status=204)


async def bucket_rules(ctx: S3Context, bucket: str) -> CorsRules | None:
    return rules_from_text(await ctx.storage.get_bucket_config(bucket, CONFIG_NAME))


def _requested_headers(ctx: S3Context) -> list[str]:
    value = ctx.headers.get("access-control-request-headers") or ""
    return [h.strip() for h in value.split(",") if h.strip()]


async def preflight(ctx: S3Context) -> S3Response:
    """OPTIONS: answered from the bucket's rules, without a signature."""
    origin = ctx.headers.get("origin")
    if not origin:
        raise BadRequest("Insufficient information. Origin request header needed.")
    method = ctx.headers.get("access-control-request-method")
    if not method or method not in CORS_METHODS:
        raise BadRequest(f"Invalid Access-Control-Request-Method: {method or 'null'}")
    rules = await bucket_rules(ctx, ctx.need_bucket())
    if not rules:
        raise CorsForbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
            Method=method,
            ResourceType="BUCKET" if ctx.key is None else "OBJECT",
        )
    wanted = _requested_headers(ctx)
    rule = find_rule(rules, origin, method, wanted)
    if rule is None:
        raise CorsForbidden(Method=method, ResourceType="BUCKET" if ctx.key is None else "OBJECT")
    headers = _allow_headers(rule, origin)
    if wanted:
        headers.append(("Access-Control-Allow-Headers", ", ".join(h.lower() for h in wanted)))
    return S3Response(headers=headers)


def _allow_headers(rule: CorsRule, origin: str) -> list[tuple[str, str]]:
    any_origin = "*" in rule.allowed_origins
    headers = [
        ("Access-Control-Allow-Origin", "*" if any_origin else origin),
        ("Access-Control-Allow-Methods", ", ".join(rule.allowed_methods)),
    ]
    if rule.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ", ".join(rule.expose_headers)))
    if rule.max_age_seconds is not None:
        headers.append(("Access-Control-Max-Age", str(rule.max_age_seconds)))
    if not any_origin:
        # Only a named origin may send credentials (a wildcard answer must not).
        headers.append(("Access-Control-Allow-Credentials", "true"))
    headers.append(("Vary", VARY))
    return headers


async def actual_request_headers(ctx: S3Context) -> list[tuple[str, str]]:
    """The CORS headers of a response to a cross-origin request (one with Origin),
    success or error; none when no rule of the bucket allows it."""
    origin = ctx.headers.get("origin")
    if not origin or ctx.bucket is None or ctx.method == "OPTIONS":
        return []
    if not is_valid_bucket_name(ctx.bucket):
        return []
    try:
        rules = await bucket_rules(ctx, ctx.bucket)
    except S3Error:
        return []
    rule = find_rule(rules or (), origin, ctx.method)
    return _allow_headers(rule, origin) if rule is not None else []

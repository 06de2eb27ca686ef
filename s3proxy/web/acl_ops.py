"""GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl."""

from __future__ import annotations

from typing import Any

from lxml import etree

from s3proxy.acl import AccessControl, Grant, Grantee, check_grants
from s3proxy.errors import MalformedACLError
from s3proxy.model import BucketInfo, ObjectInfo
from s3proxy.names import check_key
from s3proxy.web import xml
from s3proxy.web.access import acl_from_headers, bucket_acl, object_acl, require
from s3proxy.web.context import S3Context, S3Response, xml_response

XSI = "http://www.w3.org/2001/XMLSchema-instance"
_GRANTEE_FIELD = {"CanonicalUser": "ID", "Group": "URI", "AmazonCustomerByEmail": "EmailAddress"}


def render_policy(acl: AccessControl) -> bytes:
    def grantee(g: Grantee) -> Any:
        node = etree.Element("Grantee", nsmap={"xsi": XSI})
        node.set(f"{{{XSI}}}type", g.kind)
        etree.SubElement(node, _GRANTEE_FIELD[g.kind]).text = g.value
        if g.kind == "CanonicalUser" and g.display_name:
            etree.SubElement(node, "DisplayName").text = g.display_name
        return node

    return xml.document(
        "AccessControlPolicy",
        xml.element("Owner", ("ID", acl.owner_id), ("DisplayName", acl.owner_name)),
        xml.element(
            "AccessControlList",
            [
                xml.element("Grant", grantee(g.grantee), ("Permission", g.permission))
                for g in acl.grants
            ],
        ),
    )


def parse_policy(body: bytes, owner: AccessControl) -> AccessControl:
    """An AccessControlPolicy document; its Owner must be the current owner."""
    root = xml.parse(body, "AccessControlPolicy")
    owner_nodes = xml.children(root, "Owner")
    if owner_nodes and (xml.child_text(owner_nodes[0], "ID") or "").strip() != owner.owner_id:
        raise MalformedACLError()
    lists = xml.children(root, "AccessControlList")
    if len(lists) != 1:
        raise MalformedACLError()
    grants = []
    for grant in xml.children(lists[0], "Grant"):
        grantees = xml.children(grant, "Grantee")
        permission = (xml.child_text(grant, "Permission") or "").strip()
        if len(grantees) != 1 or not permission:
            raise MalformedACLError()
        node = grantees[0]
        kind = node.get(f"{{{XSI}}}type") or ""
        if kind not in _GRANTEE_FIELD:
            raise MalformedACLError()
        value = (xml.child_text(node, _GRANTEE_FIELD[kind]) or "").strip()
        if not value:
            raise MalformedACLError()
        name = (xml.child_text(node, "DisplayName") or "").strip()
        grants.append(Grant(Grantee(kind, value, name), permission))
    return AccessControl(owner.owner_id, owner.owner_name, tuple(grants))


async def _requested_acl(ctx: S3Context, current: AccessControl) -> AccessControl:
    """PutBucketAcl / PutObjectAcl take headers or an AccessControlPolicy body."""
    body = await ctx.request.body.read_all(ctx.settings.max_xml_bytes)
    if body.strip():
        acl = parse_policy(body, current)
        check_grants(acl.grants, ctx.known_emails)
        return acl
    return acl_from_headers(ctx, (current.owner_id, current.owner_name))


async def get_bucket_acl(ctx: S3Context) -> S3Response:
    info: BucketInfo = await ctx.storage.head_bucket(ctx.need_bucket())
    return xml_response(render_policy(bucket_acl(ctx, info)))


async def put_bucket_acl(ctx: S3Context) -> S3Response:
    bucket = ctx.need_bucket()
    info: BucketInfo = await ctx.storage.head_bucket(bucket)
    acl = await _requested_acl(ctx, bucket_acl(ctx, info))
    await ctx.storage.put_bucket_acl(bucket, acl)
    return S3Response()


async def _object_acl(ctx: S3Context, permission: str) -> tuple[ObjectInfo, AccessControl]:
    bucket, key = ctx.need_bucket(), ctx.need_key()
    check_key(key)
    info: ObjectInfo = await ctx.storage.head_object(bucket, key)
    acl = await object_acl(ctx, bucket, info)
    require(ctx, acl, permission)
    return info, acl


async def get_object_acl(ctx: S3Context) -> S3Response:
    _, acl = await _object_acl(ctx, "READ_ACP")
    return xml_response(render_policy(acl))


async def put_object_acl(ctx: S3Context) -> S3Response:
    _, current = await _object_acl(ctx, "WRITE_ACP")
    acl = await _requested_acl(ctx, current)
    await ctx.storage.put_object_acl(ctx.need_bucket(), ctx.need_key(), acl)
    return S3Response()

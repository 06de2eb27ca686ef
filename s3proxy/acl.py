"""Access control lists: owners, grants, canned ACLs and the permission check."""

from __future__ import annotations

from dataclasses import dataclass, field

from s3proxy.errors import InvalidArgument, MalformedACLError, UnresolvableGrantByEmailAddress

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
PERMISSIONS = ("READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL")
CANNED = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
# x-amz-grant-<name> header -> permission
GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}


@dataclass(frozen=True)
class Grantee:
    kind: str  # CanonicalUser | Group | AmazonCustomerByEmail
    value: str  # the ID, the group URI, or the e-mail address
    display_name: str = ""


@dataclass(frozen=True)
class Grant:
    grantee: Grantee
    permission: str


@dataclass(frozen=True)
class AccessControl:
    owner_id: str
    owner_name: str
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "owner_id": self.owner_id,
            "owner_name": self.owner_name,
            "grants": [
                [g.grantee.kind, g.grantee.value, g.grantee.display_name, g.permission]
                for g in self.grants
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> AccessControl | None:
        if not isinstance(data, dict):
            return None
        grants = tuple(
            Grant(Grantee(str(k), str(v), str(n)), str(p)) for k, v, n, p in data.get("grants", ())
        )
        return cls(str(data["owner_id"]), str(data["owner_name"]), grants)


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a user, or nobody (anonymous)."""

    user_id: str | None
    display_name: str = ""
    email: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


def canned_acl(
    name: str, owner_id: str, owner_name: str, bucket_owner: tuple[str, str] | None = None
) -> AccessControl:
    if name not in CANNED:
        raise InvalidArgument(ArgumentName="x-amz-acl", ArgumentValue=name)
    grants = [Grant(Grantee("CanonicalUser", owner_id, owner_name), "FULL_CONTROL")]
    if name == "public-read":
        grants.append(Grant(Grantee("Group", ALL_USERS), "READ"))
    elif name == "public-read-write":
        grants += [
            Grant(Grantee("Group", ALL_USERS), "READ"),
            Grant(Grantee("Group", ALL_USERS), "WRITE"),
        ]
    elif name == "authenticated-read":
        grants.append(Grant(Grantee("Group", AUTHENTICATED_USERS), "READ"))
    elif name in ("bucket-owner-read", "bucket-owner-full-control") and bucket_owner:
        if bucket_owner[0] != owner_id:
            permission = "READ" if name == "bucket-owner-read" else "FULL_CONTROL"
            grants.append(Grant(Grantee("CanonicalUser", *bucket_owner), permission))
    return AccessControl(owner_id, owner_name, tuple(grants))


def parse_grant_header(value: str, permission: str) -> list[Grant]:
    """``id="abc", uri="http://...", emailAddress="x@y"`` -> grants."""
    grants = []
    for item in value.split(","):
        kind, sep, raw = item.strip().partition("=")
        if not sep:
            raise InvalidArgument("Invalid grant header", ArgumentValue=value)
        target = raw.strip().strip('"')
        kinds = {"id": "CanonicalUser", "uri": "Group", "emailaddress": "AmazonCustomerByEmail"}
        if kind.strip().lower() not in kinds or not target:
            raise InvalidArgument("Invalid grant header", ArgumentValue=value)
        grants.append(Grant(Grantee(kinds[kind.strip().lower()], target), permission))
    return grants


def check_grants(grants: tuple[Grant, ...], known_emails: set[str]) -> None:
    for grant in grants:
        if grant.permission not in PERMISSIONS:
            raise MalformedACLError()
        if grant.grantee.kind == "Group" and grant.grantee.value not in (
            ALL_USERS,
            AUTHENTICATED_USERS,
        ):
            raise InvalidArgument("Invalid group uri", ArgumentValue=grant.grantee.value)
        if (
            grant.grantee.kind == "AmazonCustomerByEmail"
            and grant.grantee.value not in known_emails
        ):
            raise UnresolvableGrantByEmailAddress()


def _grantee_matches(grantee: Grantee, who: Principal) -> bool:
    if grantee.kind == "Group":
        return grantee.value == ALL_USERS or (
            grantee.value == AUTHENTICATED_USERS and not who.anonymous
        )
    if who.anonymous:
        return False
    if grantee.kind == "CanonicalUser":
        return grantee.value == who.user_id
    return who.email is not None and grantee.value.lower() == who.email.lower()


def allows(acl: AccessControl, who: Principal, permission: str) -> bool:
    """Whether ``acl`` gives ``who`` ``permission`` (FULL_CONTROL gives everything;
    an owner can always read and change the ACL itself, as in S3)."""
    if (
        not who.anonymous
        and who.user_id == acl.owner_id
        and permission in ("READ_ACP", "WRITE_ACP")
    ):
        return True
    for grant in acl.grants:
        if grant.permission in (permission, "FULL_CONTROL") and _grantee_matches(
            grant.grantee, who
        ):
            return True
    return False

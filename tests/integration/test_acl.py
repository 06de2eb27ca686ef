"""Who may do what, with ``--credentials``: users' private data, bucket listings and
Owner elements per user, canned ACLs, grant headers, AccessControlPolicy documents and
anonymous requests; and, in open mode, that the ACL operations still round-trip.

Three users (``test_auth.USERS``): alice owns the buckets, bob and carol (the one with
an e-mail address) try to get at them, and so does nobody (no credentials at all).
"""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from s3proxy.auth.credentials import User
from tests.integration.conftest import boto3_client
from tests.integration.daemon import Daemon
from tests.integration.test_auth import (
    ALICE,
    BOB,
    CAROL,
    client,
    curl,
    empty_and_delete,
    start_auth_daemon,
    stored,
    unique,
)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = start_auth_daemon(tmp_path_factory.mktemp("acl-daemon"))
    yield started
    started.stop()


@pytest.fixture
def make_bucket(daemon: Daemon) -> Iterator[Callable[..., str]]:
    """Create buckets as some user (alice by default); all removed afterwards."""
    made: list[tuple[User, str]] = []

    def make(owner: User = ALICE, **options: Any) -> str:
        name = unique("acl")
        client(daemon, owner).create_bucket(Bucket=name, **options)
        made.append((owner, name))
        return name

    yield make
    for owner, name in made:
        empty_and_delete(client(daemon, owner), name)


# Grant headers replace the canned ACL: the owner grants itself FULL_CONTROL explicitly.
WRITABLE_FOR_BOB = {
    "GrantWrite": f'id="{BOB.user_id}"',
    "GrantFullControl": f'id="{ALICE.user_id}"',
}


def denied(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``call`` fails with 403 AccessDenied (HEAD has no body: just the status)."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403, response
    assert response["Error"]["Code"] in ("AccessDenied", "403"), response


def grants(acl: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(grantee type, ID or URI or e-mail, permission) of a Get*Acl response."""
    out = set()
    for grant in acl["Grants"]:
        grantee = grant["Grantee"]
        ident = grantee.get("ID") or grantee.get("URI") or grantee.get("EmailAddress")
        out.add((grantee["Type"], ident, grant["Permission"]))
    return out


def full_control(user: User) -> tuple[str, str, str]:
    return ("CanonicalUser", user.user_id, "FULL_CONTROL")


def anonymous(method: str, url: str, data: bytes | None = None) -> requests.Response:
    """A request with no credentials at all."""
    return requests.request(method, url, data=data, timeout=10)


def error_code_of(response: requests.Response) -> str | None:
    assert response.headers["Content-Type"].startswith("application/xml"), response.text
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    return root.findtext("Code")


# -- one user's private data -----------------------------------------------------------


def test_other_users_cannot_touch_private_data(
    daemon: Daemon, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    alice = client(daemon, ALICE)
    data = os.urandom(2048)
    alice.put_object(Bucket=bucket, Key="private.txt", Body=data)
    bobs = make_bucket(BOB)
    for user in (BOB, CAROL):
        s3 = client(daemon, user)
        denied(s3.get_object, Bucket=bucket, Key="private.txt")
        denied(s3.head_object, Bucket=bucket, Key="private.txt")
        denied(s3.put_object, Bucket=bucket, Key="private.txt", Body=b"overwritten")
        denied(s3.put_object, Bucket=bucket, Key="new.txt", Body=b"planted")
        denied(s3.list_objects_v2, Bucket=bucket)
        denied(s3.list_objects, Bucket=bucket)
        denied(s3.head_bucket, Bucket=bucket)
        denied(s3.delete_object, Bucket=bucket, Key="private.txt")
        denied(s3.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": "private.txt"}]})
        denied(s3.get_object_acl, Bucket=bucket, Key="private.txt")
        denied(s3.put_object_acl, Bucket=bucket, Key="private.txt", ACL="public-read")
        denied(s3.get_bucket_acl, Bucket=bucket)
        denied(s3.put_bucket_acl, Bucket=bucket, ACL="public-read-write")
        denied(s3.get_bucket_location, Bucket=bucket)
        denied(s3.create_multipart_upload, Bucket=bucket, Key="multi")
        denied(s3.delete_bucket, Bucket=bucket)
    # Copying it out into a bucket of one's own needs READ on the source.
    denied(
        client(daemon, BOB).copy_object,
        Bucket=bobs,
        Key="stolen.txt",
        CopySource={"Bucket": bucket, "Key": "private.txt"},
    )
    assert not stored_as(daemon, BOB, bobs, "stolen.txt")
    # Nothing changed.
    assert alice.get_object(Bucket=bucket, Key="private.txt")["Body"].read() == data
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == ["private.txt"]
    assert alice.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    acl = alice.get_object_acl(Bucket=bucket, Key="private.txt")
    assert grants(acl) == {full_control(ALICE)}
    assert grants(alice.get_bucket_acl(Bucket=bucket)) == {full_control(ALICE)}


def test_missing_keys_are_not_revealed_to_other_users(
    daemon: Daemon, make_bucket: Callable[..., str]
) -> None:
    """As on S3: without READ on the bucket (s3:ListBucket) a missing key is 403, not
    404, so nobody can probe which keys exist in a private bucket."""
    bucket = make_bucket()
    client(daemon, ALICE).put_object(Bucket=bucket, Key="exists", Body=b"x")
    bob = client(daemon, BOB)
    for key in ("exists", "missing"):
        denied(bob.get_object, Bucket=bucket, Key=key)
        denied(bob.head_object, Bucket=bucket, Key=key)
        denied(bob.get_object_acl, Bucket=bucket, Key=key)
    reply = anonymous("GET", f"{daemon.endpoint}/{bucket}/missing")
    assert (reply.status_code, error_code_of(reply)) == (403, "AccessDenied")
    # Whoever may list the bucket learns that it is missing.
    with pytest.raises(ClientError) as info:
        client(daemon, ALICE).get_object(Bucket=bucket, Key="missing")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"


def stored_as(daemon: Daemon, user: User, bucket: str, key: str) -> bool:
    try:
        client(daemon, user).head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
        return False
    return True


def test_bucket_name_taken_by_another_user(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    with pytest.raises(ClientError) as info:
        client(daemon, BOB).create_bucket(Bucket=bucket)
    assert info.value.response["Error"]["Code"] == "BucketAlreadyExists"
    assert grants(client(daemon, ALICE).get_bucket_acl(Bucket=bucket)) == {full_control(ALICE)}


def test_list_buckets_shows_each_user_their_own(
    daemon: Daemon, make_bucket: Callable[..., str]
) -> None:
    alices = {make_bucket(ALICE), make_bucket(ALICE)}
    bobs = {make_bucket(BOB)}
    for user, mine, theirs in [(ALICE, alices, bobs), (BOB, bobs, alices), (CAROL, set(), alices)]:
        listed = client(daemon, user).list_buckets()
        names = {b["Name"] for b in listed["Buckets"]}
        assert mine <= names, user.display_name
        assert not theirs & names, user.display_name
        assert listed["Owner"] == {"ID": user.user_id, "DisplayName": user.display_name}


def test_listing_owner_is_the_writer(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket(**WRITABLE_FOR_BOB)
    alice, bob = client(daemon, ALICE), client(daemon, BOB)
    alice.put_object(Bucket=bucket, Key="by-alice", Body=b"a")
    bob.put_object(Bucket=bucket, Key="by-bob", Body=b"b")
    expected = {
        "by-alice": {"ID": ALICE.user_id, "DisplayName": ALICE.display_name},
        "by-bob": {"ID": BOB.user_id, "DisplayName": BOB.display_name},
    }
    v2 = alice.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert {o["Key"]: o["Owner"] for o in v2["Contents"]} == expected
    assert all("Owner" not in o for o in alice.list_objects_v2(Bucket=bucket)["Contents"])
    v1 = alice.list_objects(Bucket=bucket)
    assert {o["Key"]: o["Owner"] for o in v1["Contents"]} == expected
    # WRITE on the bucket is not READ: bob cannot list it.
    denied(bob.list_objects_v2, Bucket=bucket)
    # bob's object is his (private): the bucket owner cannot read it, bob can.
    denied(alice.get_object, Bucket=bucket, Key="by-bob")
    assert bob.get_object(Bucket=bucket, Key="by-bob")["Body"].read() == b"b"
    acl = bob.get_object_acl(Bucket=bucket, Key="by-bob")
    assert acl["Owner"]["ID"] == BOB.user_id
    assert grants(acl) == {full_control(BOB)}


# -- canned ACLs -----------------------------------------------------------------------


def test_public_read_object(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    data = b"for everyone to read\n"
    client(daemon, ALICE).put_object(Bucket=bucket, Key="pub.txt", Body=data, ACL="public-read")
    client(daemon, ALICE).put_object(Bucket=bucket, Key="priv.txt", Body=b"mine")
    for base in (daemon.endpoint, daemon.url):
        status, body = curl(f"{base}/{bucket}/pub.txt")
        assert (status, body) == (200, data)
        status, body = curl(f"{base}/{bucket}/priv.txt")
        assert status == 403
        assert ET.fromstring(body).findtext("Code") == "AccessDenied"
    # Readable is not writable, for anonymous or other users.
    status, body = curl(
        "-X", "PUT", "--data-binary", "defaced", f"{daemon.endpoint}/{bucket}/pub.txt"
    )
    assert status == 403
    assert ET.fromstring(body).findtext("Code") == "AccessDenied"
    reply = anonymous("DELETE", f"{daemon.url}/{bucket}/pub.txt")
    assert (reply.status_code, error_code_of(reply)) == (403, "AccessDenied")
    denied(client(daemon, BOB).put_object, Bucket=bucket, Key="pub.txt", Body=b"defaced")
    assert client(daemon, BOB).get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == data
    assert client(daemon, None).get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == data
    denied(client(daemon, None).get_object, Bucket=bucket, Key="priv.txt")
    assert client(daemon, ALICE).get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == data
    acl = client(daemon, ALICE).get_object_acl(Bucket=bucket, Key="pub.txt")
    assert grants(acl) == {full_control(ALICE), ("Group", ALL_USERS, "READ")}


def test_public_read_write_bucket(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket(ACL="public-read-write")
    data = os.urandom(5000)
    reply = anonymous("PUT", f"{daemon.endpoint}/{bucket}/dropped.bin", data)
    assert reply.status_code == 200, reply.text
    status, body = curl("-X", "PUT", "--data-binary", "by curl", f"{daemon.url}/{bucket}/curl.txt")
    assert status == 200, body
    assert stored(daemon, bucket, "curl.txt")
    alice = client(daemon, ALICE)
    assert alice.get_object(Bucket=bucket, Key="dropped.bin")["Body"].read() == data
    # Nobody wrote it: it belongs to the bucket's owner.
    assert alice.get_object_acl(Bucket=bucket, Key="dropped.bin")["Owner"]["ID"] == ALICE.user_id
    listing = anonymous("GET", f"{daemon.endpoint}/{bucket}?list-type=2")
    assert listing.status_code == 200
    assert b"<Key>dropped.bin</Key>" in listing.content
    # The bucket's ACL is still its owner's to change.
    reply = anonymous("PUT", f"{daemon.endpoint}/{bucket}?acl", b"")
    assert reply.status_code == 403
    acl = alice.get_bucket_acl(Bucket=bucket)
    assert grants(acl) == {
        full_control(ALICE),
        ("Group", ALL_USERS, "READ"),
        ("Group", ALL_USERS, "WRITE"),
    }


def test_authenticated_read(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    client(daemon, ALICE).put_object(
        Bucket=bucket, Key="members.txt", Body=b"members only", ACL="authenticated-read"
    )
    for user in (BOB, CAROL):
        got = client(daemon, user).get_object(Bucket=bucket, Key="members.txt")
        assert got["Body"].read() == b"members only"
        denied(client(daemon, user).put_object, Bucket=bucket, Key="members.txt", Body=b"x")
    reply = anonymous("GET", f"{daemon.endpoint}/{bucket}/members.txt")
    assert (reply.status_code, error_code_of(reply)) == (403, "AccessDenied")
    acl = client(daemon, ALICE).get_object_acl(Bucket=bucket, Key="members.txt")
    assert grants(acl) == {full_control(ALICE), ("Group", AUTHENTICATED_USERS, "READ")}


@pytest.mark.parametrize("canned", ["bucket-owner-full-control", "bucket-owner-read", "private"])
def test_bucket_owner_canned_acls(
    daemon: Daemon, make_bucket: Callable[..., str], canned: str
) -> None:
    bucket = make_bucket(**WRITABLE_FOR_BOB)
    bob, alice = client(daemon, BOB), client(daemon, ALICE)
    bob.put_object(Bucket=bucket, Key="delivery", Body=b"parcel", ACL=canned)
    expected = {full_control(BOB)}
    if canned != "private":
        permission = "FULL_CONTROL" if canned == "bucket-owner-full-control" else "READ"
        expected.add(("CanonicalUser", ALICE.user_id, permission))
    # Carol got nothing in any case.
    denied(client(daemon, CAROL).get_object, Bucket=bucket, Key="delivery")
    acl = bob.get_object_acl(Bucket=bucket, Key="delivery")
    assert acl["Owner"] == {"ID": BOB.user_id, "DisplayName": BOB.display_name}
    assert grants(acl) == expected
    if canned == "private":
        denied(alice.get_object, Bucket=bucket, Key="delivery")
        denied(alice.get_object_acl, Bucket=bucket, Key="delivery")
    else:
        assert alice.get_object(Bucket=bucket, Key="delivery")["Body"].read() == b"parcel"
    if canned == "bucket-owner-full-control":
        assert grants(alice.get_object_acl(Bucket=bucket, Key="delivery")) == expected
        alice.put_object_acl(Bucket=bucket, Key="delivery", ACL="public-read")
        assert anonymous("GET", f"{daemon.endpoint}/{bucket}/delivery").content == b"parcel"
    else:
        denied(alice.put_object_acl, Bucket=bucket, Key="delivery", ACL="public-read")


# -- grants ------------------------------------------------------------------------------


def test_grant_read_by_id(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    alice = client(daemon, ALICE)
    alice.put_object(
        Bucket=bucket,
        Key="for-bob",
        Body=b"hi bob",
        GrantRead=f'id="{BOB.user_id}"',
        GrantFullControl=f'id="{ALICE.user_id}"',
    )
    assert client(daemon, BOB).get_object(Bucket=bucket, Key="for-bob")["Body"].read() == b"hi bob"
    denied(client(daemon, BOB).get_object_acl, Bucket=bucket, Key="for-bob")
    denied(client(daemon, BOB).put_object_acl, Bucket=bucket, Key="for-bob", ACL="public-read")
    denied(client(daemon, CAROL).get_object, Bucket=bucket, Key="for-bob")
    denied(client(daemon, None).get_object, Bucket=bucket, Key="for-bob")
    acl = alice.get_object_acl(Bucket=bucket, Key="for-bob")
    assert grants(acl) == {full_control(ALICE), ("CanonicalUser", BOB.user_id, "READ")}
    # Taking the grant away takes the access away.
    alice.put_object_acl(Bucket=bucket, Key="for-bob", ACL="private")
    denied(client(daemon, BOB).get_object, Bucket=bucket, Key="for-bob")


def test_grant_read_by_email_and_group(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    alice = client(daemon, ALICE)
    assert CAROL.email is not None
    alice.put_object(
        Bucket=bucket, Key="for-carol", Body=b"hi carol", GrantRead=f'emailAddress="{CAROL.email}"'
    )
    got = client(daemon, CAROL).get_object(Bucket=bucket, Key="for-carol")
    assert got["Body"].read() == b"hi carol"
    denied(client(daemon, BOB).get_object, Bucket=bucket, Key="for-carol")
    with pytest.raises(ClientError) as info:
        alice.put_object(
            Bucket=bucket, Key="nobody", Body=b"x", GrantRead='emailAddress="nobody@example.com"'
        )
    assert info.value.response["Error"]["Code"] == "UnresolvableGrantByEmailAddress"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not stored(daemon, bucket, "nobody")
    alice.put_object(Bucket=bucket, Key="for-all", Body=b"hi all", GrantRead=f'uri="{ALL_USERS}"')
    assert anonymous("GET", f"{daemon.endpoint}/{bucket}/for-all").content == b"hi all"


def test_put_object_acl_with_policy_document(
    daemon: Daemon, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    alice = client(daemon, ALICE)
    alice.put_object(Bucket=bucket, Key="doc", Body=b"policy-controlled")
    policy = {
        "Owner": {"ID": ALICE.user_id, "DisplayName": ALICE.display_name},
        "Grants": [
            {
                "Grantee": {"Type": "CanonicalUser", "ID": ALICE.user_id},
                "Permission": "FULL_CONTROL",
            },
            {"Grantee": {"Type": "CanonicalUser", "ID": BOB.user_id}, "Permission": "READ"},
            {
                "Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS},
                "Permission": "READ_ACP",
            },
        ],
    }
    alice.put_object_acl(Bucket=bucket, Key="doc", AccessControlPolicy=policy)
    acl = alice.get_object_acl(Bucket=bucket, Key="doc")
    assert acl["Owner"] == policy["Owner"]
    assert grants(acl) == {
        full_control(ALICE),
        ("CanonicalUser", BOB.user_id, "READ"),
        ("Group", AUTHENTICATED_USERS, "READ_ACP"),
    }
    assert client(daemon, BOB).get_object(Bucket=bucket, Key="doc")["Body"].read() == (
        b"policy-controlled"
    )
    # READ_ACP for every user: carol reads the ACL, not the object.
    assert grants(client(daemon, CAROL).get_object_acl(Bucket=bucket, Key="doc")) == grants(acl)
    denied(client(daemon, CAROL).get_object, Bucket=bucket, Key="doc")
    # The document cannot hand the object to someone else.
    stolen = {**policy, "Owner": {"ID": BOB.user_id, "DisplayName": BOB.display_name}}
    with pytest.raises(ClientError) as info:
        alice.put_object_acl(Bucket=bucket, Key="doc", AccessControlPolicy=stolen)
    assert 400 <= info.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert alice.get_object_acl(Bucket=bucket, Key="doc")["Owner"]["ID"] == ALICE.user_id
    # Nor can bob, who may only read it, rewrite it.
    denied(client(daemon, BOB).put_object_acl, Bucket=bucket, Key="doc", AccessControlPolicy=policy)


def test_bucket_acl_round_trip(daemon: Daemon, make_bucket: Callable[..., str]) -> None:
    bucket = make_bucket()
    alice = client(daemon, ALICE)
    alice.put_object(Bucket=bucket, Key="listed", Body=b"x")
    acl = alice.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"] == {"ID": ALICE.user_id, "DisplayName": ALICE.display_name}
    assert grants(acl) == {full_control(ALICE)}
    reply = anonymous("GET", f"{daemon.endpoint}/{bucket}")
    assert (reply.status_code, error_code_of(reply)) == (403, "AccessDenied")
    alice.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert grants(alice.get_bucket_acl(Bucket=bucket)) == {
        full_control(ALICE),
        ("Group", ALL_USERS, "READ"),
    }
    status, body = curl(f"{daemon.url}/{bucket}")
    assert status == 200
    assert b"<Key>listed</Key>" in body
    # Reading the listing is not reading the objects.
    assert anonymous("GET", f"{daemon.endpoint}/{bucket}/listed").status_code == 403
    policy = {
        "Owner": {"ID": ALICE.user_id},
        "Grants": [
            {
                "Grantee": {"Type": "CanonicalUser", "ID": ALICE.user_id},
                "Permission": "FULL_CONTROL",
            },
            {"Grantee": {"Type": "CanonicalUser", "ID": CAROL.user_id}, "Permission": "WRITE"},
        ],
    }
    alice.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert grants(alice.get_bucket_acl(Bucket=bucket)) == {
        full_control(ALICE),
        ("CanonicalUser", CAROL.user_id, "WRITE"),
    }
    client(daemon, CAROL).put_object(Bucket=bucket, Key="from-carol", Body=b"c")
    denied(client(daemon, BOB).put_object, Bucket=bucket, Key="from-bob", Body=b"b")
    assert stored_as(daemon, CAROL, bucket, "from-carol")
    listed = alice.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["from-carol", "listed"]
    assert anonymous("GET", f"{daemon.endpoint}/{bucket}").status_code == 403


# -- no credentials at all ---------------------------------------------------------------


def test_anonymous_requests_on_private_data(
    daemon: Daemon, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    client(daemon, ALICE).put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    for base in (daemon.endpoint, daemon.url):
        for method, path, body in [
            ("GET", "/", None),
            ("GET", f"/{bucket}", None),
            ("GET", f"/{bucket}?list-type=2", None),
            ("GET", f"/{bucket}?acl", None),
            ("GET", f"/{bucket}?location", None),
            ("GET", f"/{bucket}/secret", None),
            ("GET", f"/{bucket}/secret?acl", None),
            ("PUT", f"/{bucket}/secret", b"replaced"),
            ("PUT", f"/{bucket}/planted", b"planted"),
            ("PUT", f"/{bucket}/secret?acl", b""),
            ("DELETE", f"/{bucket}/secret", None),
            ("DELETE", f"/{bucket}", None),
            ("POST", f"/{bucket}/multi?uploads", b""),
            ("PUT", f"/{unique('anon')}", b""),
        ]:
            reply = anonymous(method, base + path, body)
            assert reply.status_code == 403, f"{method} {base}{path}: {reply.text}"
            assert error_code_of(reply) == "AccessDenied", f"{method} {path}"
            assert b"top secret" not in reply.content
        head = requests.head(f"{base}/{bucket}/secret", timeout=10)
        assert head.status_code == 403
    alice = client(daemon, ALICE)
    assert alice.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"top secret"
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == ["secret"]
    assert alice.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- open mode ---------------------------------------------------------------------------


def test_open_mode_acl_round_trip(fs_daemon: Daemon, tmp_path: Path) -> None:
    """No --credentials: nothing is enforced, but ACLs are recorded and returned."""
    s3 = boto3_client(fs_daemon.endpoint)
    name = f"open-acl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    try:
        owner = s3.list_buckets()["Owner"]
        s3.put_object(Bucket=name, Key="obj", Body=b"open data")
        acl = s3.get_object_acl(Bucket=name, Key="obj")
        assert acl["Owner"] == owner
        assert grants(acl) == {("CanonicalUser", owner["ID"], "FULL_CONTROL")}
        s3.put_object_acl(Bucket=name, Key="obj", ACL="public-read")
        acl = s3.get_object_acl(Bucket=name, Key="obj")
        assert grants(acl) == {
            ("CanonicalUser", owner["ID"], "FULL_CONTROL"),
            ("Group", ALL_USERS, "READ"),
        }
        policy = {
            "Owner": {"ID": owner["ID"]},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": "someone"}, "Permission": "READ"},
                {"Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS}, "Permission": "WRITE"},
            ],
        }
        s3.put_object_acl(Bucket=name, Key="obj", AccessControlPolicy=policy)
        assert grants(s3.get_object_acl(Bucket=name, Key="obj")) == {
            ("CanonicalUser", "someone", "READ"),
            ("Group", AUTHENTICATED_USERS, "WRITE"),
        }
        s3.put_object(Bucket=name, Key="granted", Body=b"g", GrantRead=f'uri="{ALL_USERS}"')
        assert grants(s3.get_object_acl(Bucket=name, Key="granted")) == {
            ("Group", ALL_USERS, "READ")
        }
        s3.put_bucket_acl(Bucket=name, ACL="authenticated-read")
        acl = s3.get_bucket_acl(Bucket=name)
        assert acl["Owner"] == owner
        assert grants(acl) == {
            ("CanonicalUser", owner["ID"], "FULL_CONTROL"),
            ("Group", AUTHENTICATED_USERS, "READ"),
        }
        # Not enforced: a request without any credentials still reads and writes.
        status, body = curl(f"{fs_daemon.url}/{name}/obj")
        assert (status, body) == (200, b"open data")
        assert anonymous("PUT", f"{fs_daemon.endpoint}/{name}/anon", b"a").status_code == 200
        assert s3.get_object(Bucket=name, Key="anon")["Body"].read() == b"a"
    finally:
        empty_and_delete(s3, name)

"""The IStorage contract suite, the same tests every backend passes, run against the
s3: backend over the session's real Ceph RGW.

The contract modules' tests are imported here so pytest collects them again in this
module, where ``storage`` is an S3Storage over RGW (each test's buckets under a
prefix of its own); the filesystem-only tests skip, as they do for the memory
backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import pytest_twisted
from twisted.internet.interfaces import IReactorTime

from s3proxy.errors import InvalidPart, NoSuchKey
from s3proxy.storage.s3.client import UpstreamClient
from s3proxy.storage.s3.signer import UpstreamCredentials
from s3proxy.storage.s3.storage import S3Storage
from tests.contract.test_concurrency_contract import *  # noqa: F403
from tests.contract.test_conditional_contract import *  # noqa: F403
from tests.contract.test_config_contract import *  # noqa: F403
from tests.contract.test_multipart_contract import *  # noqa: F403
from tests.contract.test_multipart_contract import (
    KEY,
    MIN_PART,
    all_parts,
    complete,
    create,
    expected_etag,
    upload_part,
)
from tests.contract.test_storage_contract import *  # noqa: F403
from tests.contract.test_storage_contract import BUCKET, get, make_bucket, payload
from tests.scaleout.ceph import CephCluster

pytestmark = pytest.mark.scaleout

# Where Ceph RGW 16.2 (Debian 12's) answers differently from AWS and from our other
# backends, found by this run; each is an open finding, not a pass (see
# docs/backends.md). Tests run and are reported as XFAIL/XPASS.
RGW_DEVIATIONS = {
    # RGW 16.2 refuses a completion that leaves out an uploaded part (InvalidPart),
    # which AWS allows (seen with boto3 straight to RGW too). Parts go straight into
    # the upstream's upload, so its completion rules are the upstream's: what we
    # promise there instead is test_a_part_left_out_is_refused_and_the_upload_kept.
    "test_complete_assembles_the_requested_parts": "RGW: a part left out is InvalidPart",
    # Its bad completions are refused as they should be; only the good one at its
    # end leaves out part 3.
    "test_failed_completion_leaves_the_upload_intact": "RGW: a part left out is InvalidPart",
}


@pytest.fixture(autouse=True)
def rgw_deviation(request: pytest.FixtureRequest) -> None:
    reason = RGW_DEVIATIONS.get(request.node.originalname)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))


def _reactor() -> IReactorTime:
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


@pytest.fixture
def storage(ceph: CephCluster) -> Iterator[S3Storage]:
    credentials = UpstreamCredentials(ceph.access_key, ceph.secret_key)
    client = UpstreamClient(_reactor(), ceph.endpoint, credentials, "default")
    yield S3Storage(client, bucket_prefix=f"c{uuid.uuid4().hex[:10]}-")
    client.close()


@pytest.fixture
def fs_storage() -> None:
    pytest.skip("filesystem backend only")


@pytest_twisted.ensureDeferred
async def test_a_part_left_out_is_refused_and_the_upload_kept(storage: S3Storage) -> None:
    """On RGW 16.2 a completion without every uploaded part is the upstream's clean
    InvalidPart, nothing is stored, and the upload completes with all its parts."""
    await make_bucket(storage)
    upload = await create(storage)
    datas = {1: payload(MIN_PART, seed=31), 2: payload(MIN_PART, seed=32), 3: b"last"}
    etags = {n: (await upload_part(storage, upload, n, d)).etag for n, d in datas.items()}
    with pytest.raises(InvalidPart):
        await complete(storage, upload, [(1, etags[1]), (3, etags[3])])
    with pytest.raises(NoSuchKey):
        await storage.head_object(BUCKET, KEY)
    assert [p.number for p in await all_parts(storage, upload)] == [1, 2, 3]
    info = await complete(storage, upload, sorted(etags.items()))
    assert info.etag == expected_etag(list(datas.values()))
    assert await get(storage, KEY) == b"".join(datas.values())

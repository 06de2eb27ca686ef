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
from twisted.internet.interfaces import IReactorTime

from s3proxy.storage.s3.client import UpstreamClient
from s3proxy.storage.s3.signer import UpstreamCredentials
from s3proxy.storage.s3.storage import S3Storage
from tests.contract.test_conditional_contract import *  # noqa: F403
from tests.contract.test_config_contract import *  # noqa: F403
from tests.contract.test_multipart_contract import *  # noqa: F403
from tests.contract.test_storage_contract import *  # noqa: F403
from tests.scaleout.ceph import CephCluster

pytestmark = pytest.mark.scaleout

# Where Ceph RGW 16.2 (Debian 12's) answers differently from AWS and from our other
# backends, found by this run; each is an open finding, not a pass (see
# docs/backends.md). Tests run and are reported as XFAIL/XPASS.
RGW_DEVIATIONS = {
    # RGW refuses a completion that leaves out an uploaded part (InvalidPart), which
    # AWS allows; seen with boto3 straight to RGW, 6 MiB parts too.
    "test_complete_assembles_the_requested_parts": "RGW: a part left out is InvalidPart",
    "test_failed_completion_leaves_the_upload_intact": "RGW: a part left out is InvalidPart",
    "test_entity_too_small_names_the_part": "RGW: a part left out is InvalidPart",
    "test_writer_backpressure": "over 8 MiB of unknown length goes chunked: RGW says 411",
    "test_writer_backpressure_with_reentrant_writes": "chunked over 8 MiB: RGW says 411",
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

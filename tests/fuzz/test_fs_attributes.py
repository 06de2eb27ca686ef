"""Object attributes at S3's limits on the filesystem backend, both metadata modes.

A key of up to 1024 bytes with 2 KiB of user metadata and ten tags of the longest
allowed keys and values must be stored and read back, or (xattr mode, if even the
compressed record does not fit the file system's extended attributes) refused with
MetadataTooLarge; never an OSError (ext4 answers ENOSPC past about 4 KiB). A
multipart object's record (its part sizes) must fit too.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import example, given, settings
from hypothesis import strategies as st

from s3proxy.errors import MetadataTooLarge
from s3proxy.model import ObjectAttributes
from s3proxy.names import is_xml_safe
from s3proxy.storage.filesystem import INTERNAL_DIR
from s3proxy.storage.fsmeta import MetaRecord, XattrMetadata, xattrs_work
from tests.fuzz.conftest import scaled
from tests.fuzz.fsbackend import BUCKET, Backend, metadata_modes

safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=256).filter(is_xml_safe)
names = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=40)
metadata = st.dictionaries(names, safe_text, max_size=12).filter(
    lambda m: sum(len(k.encode()) + len(v.encode()) for k, v in m.items()) <= 2048
)
tags = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=128).filter(
        is_xml_safe
    ),
    safe_text,
    max_size=10,
)
# Keys up to 1024 bytes the backend can hold (no '.' or '..' segment).
keys = (
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c != "/"),
        min_size=1,
        max_size=200,
    )
    .map(lambda seg: "/".join([seg] * 5)[:1024].strip("/"))
    .filter(lambda key: not {".", ".."} & set(key.split("/")))
)


@settings(max_examples=scaled(25))
@given(mode=metadata_modes, key=keys, meta=metadata, tagset=tags, data=st.binary(max_size=16))
@example(
    mode="xattr",
    key="k" * 200 + "/" + "e" * 200,
    meta={"m": "v" * 2000},
    tagset={f"{n:03d}" + "t" * 125: "u" * 256 for n in range(10)},
    data=b"x",
)
def test_attributes_at_the_limits(
    mode: str, key: str, meta: dict[str, str], tagset: dict[str, str], data: bytes
) -> None:
    backend = Backend(mode)
    try:
        backend.loop.run(store(backend, key, meta, tagset, data))
    finally:
        backend.close()


async def store(
    backend: Backend, key: str, meta: dict[str, str], tagset: dict[str, str], data: bytes
) -> None:
    storage = backend.storage
    await storage.create_bucket(BUCKET)
    attributes = ObjectAttributes(
        content_type="text/plain; charset=utf-8",
        metadata=meta,
        tags=tagset,
        headers={"Cache-Control": "no-cache"},
    )
    writer = await storage.open_writer(BUCKET, key, attributes, None, len(data))
    writer.write(data)
    try:
        await writer.finish()
    except MetadataTooLarge:
        assert storage.metadata.name == "xattr"
        assert os.listdir(backend.root / INTERNAL_DIR / "tmp") == []
        return
    info = await storage.head_object(BUCKET, key)
    assert (info.attributes.metadata, info.attributes.tags) == (meta, tagset)
    assert info.attributes.content_type == attributes.content_type


def test_many_part_sizes_fit_in_an_xattr() -> None:
    """A 10000-part upload's record (80 KB of JSON) is kept in the file's xattr."""
    with tempfile.TemporaryDirectory() as directory:
        if not xattrs_work(directory):
            return  # no user xattrs here: the sidecar mode is used instead
        path = os.path.join(directory, "object")
        open(path, "wb").close()
        record = MetaRecord(
            etag="0" * 32 + "-10000",
            size=5 * 1024 * 1024 * 10000,
            mtime_ns=1,
            attributes=ObjectAttributes(metadata={"note": "x" * 1000}),
            part_sizes=(5 * 1024 * 1024,) * 9999 + (17,),
        )
        store = XattrMetadata()
        store.save(BUCKET, "k" * 1024, path, record)
        assert store.load(BUCKET, "k" * 1024, path) == record

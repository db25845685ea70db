"""The two stores behind one protocol: local disk and S3 (a real S3-compatible server, moto).

Streams in, streams out, ranges, atomic writes (a failed write leaves nothing behind), and the
failures a mirror must tell apart (missing object vs. storage down)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from app.storage.local import LocalStore
from app.storage.s3 import PART_BYTES, S3Store
from app.storage.store import ObjectMissing, StorageError, Store
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def broken(good: bytes) -> AsyncIterator[bytes]:
    yield good
    raise ConnectionResetError("the source hung up")


async def read_all(store: Store, key: str, **kwargs: int) -> bytes:
    reader = await store.open(key, **kwargs)
    try:
        return b"".join([chunk async for chunk in reader.chunks])
    finally:
        await reader.aclose()


StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["local", "s3"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    made: list[Store] = []

    async def make() -> Store:
        if request.param == "local":
            store: Store = LocalStore(tmp_path / "files")
        else:
            s3: S3Server = request.getfixturevalue("s3")
            store = S3Store(
                s3.new_bucket(),
                "prefix/x",
                endpoint_url=s3.endpoint_url,
                region=REGION,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
            )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_put_then_open_gives_back_the_bytes_size_and_hash(make_store: StoreFactory) -> None:
    store = await make_store()
    data = [b"x" * 1000, b"y" * 2345, b"", b"z"]
    stored = await store.put("gen-1/result-1.png", stream(*data), content_type="image/png")
    whole = b"".join(data)
    assert (stored.bytes, stored.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert await store.exists("gen-1/result-1.png")
    assert await read_all(store, "gen-1/result-1.png") == whole
    reader = await store.open("gen-1/result-1.png", start=10, end=19)
    assert reader.size == len(whole) and reader.length == 10
    await reader.aclose()
    assert await read_all(store, "gen-1/result-1.png", start=10, end=19) == whole[10:20]
    assert await read_all(store, "gen-1/result-1.png", start=len(whole) - 3) == whole[-3:]


async def test_a_second_put_replaces_the_object(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.put("g/a.bin", stream(b"first version"), content_type="application/octet-stream")
    await store.put("g/a.bin", stream(b"second"), content_type="application/octet-stream")
    assert await read_all(store, "g/a.bin") == b"second"


async def test_a_failed_write_leaves_nothing_behind(make_store: StoreFactory) -> None:
    store = await make_store()
    with pytest.raises(ConnectionResetError):
        await store.put("g/half.mp4", broken(b"some bytes"), content_type="video/mp4")
    assert not await store.exists("g/half.mp4")
    with pytest.raises(ObjectMissing):
        await store.open("g/half.mp4")


async def test_delete_and_probe(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.probe()
    await store.put("g/x.png", stream(b"png"), content_type="image/png")
    await store.delete("g/x.png")
    await store.delete("g/x.png")  # twice is fine
    assert not await store.exists("g/x.png")


async def test_a_large_object_goes_up_in_parts_and_comes_back_whole(s3: S3Server) -> None:
    store = S3Store(
        s3.new_bucket(),
        endpoint_url=s3.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    try:
        block = bytes(range(256)) * 4096  # 1 MiB
        count = PART_BYTES // len(block) * 2 + 3  # more than two parts
        stored = await store.put("big/video.mp4", stream(*[block] * count), content_type="video/mp4")
        assert stored.bytes == len(block) * count
        digest = hashlib.sha256()
        reader = await store.open("big/video.mp4")
        assert reader.content_type == "video/mp4"
        async for chunk in reader.chunks:
            digest.update(chunk)
        assert digest.hexdigest() == stored.sha256
    finally:
        await store.close()


async def test_a_multipart_upload_that_fails_is_aborted(s3: S3Server) -> None:
    store = S3Store(
        s3.new_bucket(),
        endpoint_url=s3.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    try:
        with pytest.raises(ConnectionResetError):
            await store.put("big/half.mp4", broken(b"x" * (PART_BYTES + 10)), content_type="video/mp4")
        assert not await store.exists("big/half.mp4")
        client = await store._s3()
        uploads = await client.list_multipart_uploads(Bucket=store.bucket)
        assert not uploads.get("Uploads"), "no half-finished upload is left behind"
    finally:
        await store.close()


async def test_storage_that_is_down_is_a_storage_error_not_a_missing_object(
    s3: S3Server, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    local = LocalStore(blocked / "files")
    with pytest.raises(StorageError) as caught:
        await local.put("g/a.png", stream(b"x"), content_type="image/png")
    assert not isinstance(caught.value, ObjectMissing)
    with pytest.raises(StorageError):
        await local.probe()

    bucket = s3.new_bucket()
    store = S3Store(
        bucket,
        endpoint_url=s3.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    s3.stop()
    try:
        with pytest.raises(StorageError) as down:
            await store.probe()
        assert not isinstance(down.value, ObjectMissing)
        with pytest.raises(StorageError):
            await store.put("g/a.png", stream(b"x"), content_type="image/png")
    finally:
        s3.start()
        await store.close()
    store = S3Store(
        bucket,
        endpoint_url=s3.endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    try:
        await store.probe()  # back
    finally:
        await store.close()


def test_keys_cannot_escape_the_local_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "files")
    for bad in ("../etc/passwd", "/abs/path", "a/../../b", ".hidden/x", "a//b", ""):
        with pytest.raises(ValueError):
            store._path(bad)

"""The S3 store: any S3-compatible service (AWS S3, Cloudflare R2, Backblaze B2, MinIO), through
aiobotocore, configured by the standard ``AWS_*`` variables and ``S3_ENDPOINT_URL``.

Small objects are one PUT; larger ones a multipart upload whose parts are sent as they fill
(8 MiB each, so memory stays bounded whatever the object's size) and which is completed only at
the end, or aborted: a reader never sees a partial object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.store import Digest, ObjectMissing, ObjectReader, StorageError, StoredObject

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; every part but the last is this big
_READ_CHUNK = 256 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Store:
    """Objects in one bucket, under an optional key prefix."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                # Our own loops retry with backoff; one quick retry here covers a dropped connection.
                retries={"max_attempts": 2, "mode": "standard"},
                signature_version="s3v4",
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        if self._client is None:
            stack = AsyncExitStack()
            self._client = await stack.enter_async_context(get_session().create_client("s3", **self._options))
            self._stack = stack
        return self._client

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, content_type: str) -> StoredObject:
        """Stream ``chunks`` to ``key``: one PUT when small, else a multipart upload."""
        s3 = await self._s3()
        target = self._key(key)
        digest = Digest()
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            # Errors of the source (``chunks``) pass through as they are; only S3's are storage errors.
            async for chunk in chunks:
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        started = await _storage(
                            s3.create_multipart_upload(
                                Bucket=self.bucket, Key=target, ContentType=content_type
                            )
                        )
                        upload_id = started["UploadId"]
                    parts.append(await self._part(s3, target, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                await _storage(
                    s3.put_object(
                        Bucket=self.bucket, Key=target, Body=bytes(buffer), ContentType=content_type
                    )
                )
            else:
                if buffer:
                    parts.append(await self._part(s3, target, upload_id, len(parts) + 1, bytes(buffer)))
                await _storage(
                    s3.complete_multipart_upload(
                        Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts}
                    )
                )
        except BaseException:
            if upload_id is not None:
                await asyncio.shield(self._abort(s3, target, upload_id))
            raise
        return StoredObject(key, digest.bytes, digest.sha256, content_type)

    async def _part(self, s3: Any, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = await _storage(
            s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        )
        return {"ETag": answer["ETag"], "PartNumber": number}

    async def _abort(self, s3: Any, key: str, upload_id: str) -> None:
        # What an abort cannot remove, the bucket's lifecycle rules for incomplete uploads do.
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> ObjectReader:
        """The object at ``key`` as a stream of ``start..end`` (inclusive), read with a ranged GET."""
        s3 = await self._s3()
        options: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            answer = await s3.get_object(**options)
        except ClientError as exc:
            if _code(exc) in _MISSING or _code(exc) == "InvalidRange":
                raise ObjectMissing(key) from exc
            raise StorageError(f"s3: {_describe(exc)}") from exc
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"s3: {_describe(exc)}") from exc
        length = int(answer["ContentLength"])
        size = length
        if content_range := answer.get("ContentRange"):  # "bytes 0-99/1234"
            size = int(str(content_range).rsplit("/", 1)[-1])
        body = answer["Body"]
        return ObjectReader(
            size, answer.get("ContentType") or "application/octet-stream", _stream(body), start, length
        )

    async def exists(self, key: str) -> bool:
        """True when a HEAD finds the object."""
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise StorageError(f"s3: {_describe(exc)}") from exc
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"s3: {_describe(exc)}") from exc
        return True

    async def delete(self, key: str) -> None:
        """Remove the object (S3 answers the same whether it existed or not)."""
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError, OSError) as exc:
            raise StorageError(f"s3: {_describe(exc)}") from exc

    async def probe(self) -> None:
        """A HEAD of the bucket: proves the endpoint, the credentials and the bucket."""
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise StorageError(f"s3: {_describe(exc)}") from exc

    async def close(self) -> None:
        """Close the client's connections."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


async def _storage(call: Awaitable[Any]) -> Any:
    """Await one S3 call, its failures as StorageError."""
    try:
        return await call
    except (ClientError, BotoCoreError, OSError) as exc:
        raise StorageError(f"s3: {_describe(exc)}") from exc


async def _stream(body: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in body.iter_chunks(_READ_CHUNK):
            yield chunk
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"s3: {_describe(exc)}") from exc
    finally:
        body.close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    # botocore's messages name the bucket and key, never the credentials.
    return (str(exc) or type(exc).__name__)[:300]

"""Uploads: clients hand taskhook an image so they need no image hosting of their own.

The body is streamed to a staged file under the size cap (413 past it), its type is read from
its magic number and must be the one its ``Content-Type`` claims (422 ``invalid_image``
otherwise: a lie about the type is as bad as no image), its dimensions from its header. It is
then kept like a mirrored result — content-addressed in the asset store, one ``assets`` row —
and named in a task's ``images`` by its id or its link.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from service.assets.download import StagedWriter, TooLarge
from service.assets.keeper import Assets
from service.assets.probe import NotAnImage
from service.core.assets import Asset
from service.core.clock import Clock
from service.core.ids import new_id
from service.core.images import IMAGE_TYPES
from service.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from service.store.base import Store


class InvalidImage(ValidationFailed):
    code = "invalid_image"


async def create_upload(
    assets: Assets,
    store: Store,
    clock: Clock,
    *,
    account_id: str,
    content_type: str,
    declared_length: int | None,
    body: AsyncIterator[bytes],
) -> Asset:
    """Keep the uploaded image ``body``; the new asset (kind ``upload``)."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in IMAGE_TYPES:
        raise UnsupportedMediaType(
            f"Send the image as the raw body, with Content-Type {', '.join(IMAGE_TYPES)}."
        )
    limit = assets.settings.max_upload_bytes
    if declared_length is not None and declared_length > limit:
        raise PayloadTooLarge(f"The image exceeds {limit} bytes.")
    writer = StagedWriter(assets.store.staging, limit)
    try:
        async for chunk in body:
            await writer.write(chunk)
        staged = await writer.finish()
    except TooLarge:
        writer.discard()
        raise PayloadTooLarge(f"The image exceeds {limit} bytes.") from None
    except NotAnImage:
        writer.discard()
        raise InvalidImage(f"The body is not a {media_type} image.", field="body") from None
    except BaseException:
        writer.discard()
        raise
    if staged.info.content_type != media_type:
        staged.path.unlink(missing_ok=True)
        raise InvalidImage(
            f"The body is a {staged.info.content_type} image, not the {media_type} its"
            " Content-Type says.",
            field="content_type",
        )
    try:
        await assets.store.put(staged.sha256, staged.path, media_type)
    finally:
        staged.path.unlink(missing_ok=True)
    now = clock()
    asset = Asset(
        id=new_id("upl", now), account_id=account_id, kind="upload", sha256=staged.sha256,
        content_type=media_type, width=staged.info.width, height=staged.info.height,
        bytes=staged.size, created_at=now,
    )  # fmt: skip
    async with store.transaction() as tx:
        await tx.insert_asset(asset)
    return asset

"""``Assets``: what the mirror loop, the upload route and ``/assets`` share, wired once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.assets.download import Downloader
from service.assets.links import AssetLinks
from service.assets.s3 import S3AssetStore
from service.assets.store import AssetStore, AssetStoreError, BlobMissing, FileAssetStore
from service.core.clock import Clock
from service.core.ledger import Failure
from service.delivery.ssrf import TargetPolicy
from service.providers.base import ProviderRejected, ProviderRetryable, ReferenceFile
from service.settings import AssetSettings, Settings
from service.store.base import Reads


def open_asset_store(
    settings: AssetSettings, data_dir: Path, *, durable: bool = True
) -> AssetStore:
    """The asset store ``[assets] store`` names: files under ``data_dir/assets`` (fsynced when
    ``durable``), or S3."""
    if settings.store == "s3" and settings.s3 is not None:
        staging = data_dir / "assets" / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return S3AssetStore(settings.s3, staging)
    return FileAssetStore(data_dir / "assets", durable=durable)


def asset_policy(settings: Settings) -> TargetPolicy:
    """The endpoints' SSRF policy, with ``[assets] allowed_networks`` also let through."""
    networks = (*settings.delivery.allowed_networks, *settings.assets.allowed_networks)
    return TargetPolicy.from_settings(networks)


@dataclass(frozen=True)
class Assets:
    settings: AssetSettings
    store: AssetStore
    links: AssetLinks
    downloader: Downloader

    async def close(self) -> None:
        await self.downloader.close()
        await self.store.close()


def asset_links(settings: Settings, clock: Clock) -> AssetLinks:
    """Links signed with the secret key (and accepted under the previous ones)."""
    keys = settings.signing_keys
    return AssetLinks(keys, settings.service.public_base, settings.assets.url_ttl_seconds, clock)


def build_assets(settings: Settings, clock: Clock) -> Assets:
    durable = settings.storage.synchronous == "FULL"
    store = open_asset_store(settings.assets, settings.storage.data_dir, durable=durable)
    links = asset_links(settings, clock)
    downloader = Downloader(settings.assets, asset_policy(settings), store.staging)
    return Assets(settings.assets, store, links, downloader)


class UploadFiles:
    """Uploads' bytes for providers that take files (``providers.base.ReferenceFiles``)."""

    def __init__(self, reads: Reads, store: AssetStore) -> None:
        self._reads = reads
        self._store = store

    async def read(self, upload_id: str) -> ReferenceFile:
        asset = await self._reads.get_asset(upload_id)
        if asset is None or asset.kind != "upload" or asset.purged_at is not None:
            raise ProviderRejected(
                Failure("upload_unavailable", f"Upload {upload_id} is no longer kept.")
            )
        try:
            data = b"".join(
                [chunk async for chunk in self._store.read(asset.sha256, 0, asset.bytes)]
            )
        except BlobMissing:
            raise ProviderRejected(
                Failure("upload_unavailable", f"Upload {upload_id} is no longer kept.")
            ) from None
        except AssetStoreError as exc:
            raise ProviderRetryable(f"The asset store failed: {exc.message}") from None
        extension = asset.content_type.rsplit("/", 1)[-1]
        return ReferenceFile(data, asset.content_type, f"{upload_id}.{extension}")

"""Delivery targets are read and decrypted when first asked for and again only once their subscription changes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chargewire.clock import utcnow
from chargewire.dispatch import targets as targets_module
from chargewire.dispatch.targets import StoredTargets
from chargewire.runtime import Runtime
from chargewire.security import SecretBox
from chargewire.services.subscriptions import CreatedSubscription
from chargewire.services.tokens import CreatedToken
from chargewire.store.subscription_store import SubscriptionStore
from chargewire.store.token_store import TokenStore
from tests.conftest import TEST_SECRET_KEY
from tests.support.foreign_secrets import encrypt_under_another_key


class CountingBox(SecretBox):
    """A real SecretBox that counts its decryptions."""

    def __init__(self, secret_key: str) -> None:
        super().__init__(secret_key)
        self.decryptions = 0

    def decrypt(self, ciphertext: bytes) -> str:
        """Decrypt, and count it."""
        self.decryptions += 1
        return super().decrypt(ciphertext)


@pytest.fixture
def box() -> CountingBox:
    return CountingBox(TEST_SECRET_KEY)


@pytest.fixture
def stored_targets(runtime: Runtime, box: CountingBox) -> StoredTargets:
    """Targets with no cache period: every call asks whether they are current."""
    return StoredTargets(SubscriptionStore(runtime.database, box), TokenStore(runtime.database), box, ttl_s=0.0)


async def _webhook(runtime: Runtime, owner: CreatedToken) -> CreatedSubscription:
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    return await runtime.subscriptions.create(owner.token, body)


async def test_an_unchanged_subscription_is_not_decrypted_again_when_its_cache_period_passes(
    runtime: Runtime, owner: CreatedToken, stored_targets: StoredTargets, box: CountingBox
) -> None:
    created = await _webhook(runtime, owner)
    first = await stored_targets.targets([created.subscription.id])
    decrypted = box.decryptions

    again = await stored_targets.targets([created.subscription.id])

    assert box.decryptions == decrypted
    assert again == first


async def test_a_rotated_signing_secret_is_read_once_the_cache_period_passes(
    runtime: Runtime, owner: CreatedToken, stored_targets: StoredTargets
) -> None:
    created = await _webhook(runtime, owner)
    await stored_targets.targets([created.subscription.id])

    await runtime.subscription_store.rotate_signing_secret(created.subscription.id, "whsec_" + "B" * 32, utcnow(), 60)
    target = (await stored_targets.targets([created.subscription.id]))[created.subscription.id]

    assert target.signing_secrets == ("whsec_" + "B" * 32, created.signing_secret)


async def test_a_rotated_out_signing_secret_stops_signing_once_it_expires_though_nothing_was_written(
    runtime: Runtime, owner: CreatedToken, stored_targets: StoredTargets, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await _webhook(runtime, owner)
    await runtime.subscription_store.rotate_signing_secret(created.subscription.id, "whsec_" + "C" * 32, utcnow(), 60)
    assert len((await stored_targets.targets([created.subscription.id]))[created.subscription.id].signing_secrets) == 2

    later = utcnow() + timedelta(seconds=120)

    def after_expiry() -> datetime:
        return later

    monkeypatch.setattr(targets_module, "utcnow", after_expiry)
    target = (await stored_targets.targets([created.subscription.id]))[created.subscription.id]

    assert target.signing_secrets == ("whsec_" + "C" * 32,)


async def test_an_undecryptable_subscription_fails_alone_on_every_refresh_while_the_others_are_not_decrypted_again(
    runtime: Runtime, owner: CreatedToken, stored_targets: StoredTargets, box: CountingBox
) -> None:
    healthy, broken = await _webhook(runtime, owner), await _webhook(runtime, owner)
    await encrypt_under_another_key(runtime.settings.effective_database_url, TEST_SECRET_KEY, broken.subscription.id)
    ids = [healthy.subscription.id, broken.subscription.id]
    await stored_targets.targets(ids)
    decrypted = box.decryptions

    found = await stored_targets.targets(ids)

    assert found[healthy.subscription.id].unusable is None
    unusable = found[broken.subscription.id].unusable
    assert unusable is not None
    assert unusable.error_class == "secret_undecryptable"
    assert box.decryptions == decrypted + 1  # the broken one's signing secrets, tried again


async def test_a_deleted_subscription_is_left_out_once_its_cache_period_passes(
    runtime: Runtime, owner: CreatedToken, stored_targets: StoredTargets
) -> None:
    created = await _webhook(runtime, owner)
    await stored_targets.targets([created.subscription.id])

    await runtime.subscription_store.delete_subscription(created.subscription.id)

    assert await stored_targets.targets([created.subscription.id]) == {}

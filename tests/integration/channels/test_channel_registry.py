"""A channel registered from its own package (the test-only "memory" one) works end to end with no other change:
subscribed to through the API, stored on both backends, named in the OpenAPI schema, shown in the back office
form, and handed its deliveries by the dispatcher."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update

import chargewire
from chargewire.backoffice.session import COOKIE_NAME, Session, SessionSigner
from chargewire.catalog import load_event_types
from chargewire.channels.registry import unregister_channel
from chargewire.dispatch.targets import StoredTargets
from chargewire.runtime import Runtime
from chargewire.security import SecretBox
from chargewire.security.key_file import resolve_secret_key
from chargewire.services.backoffice_sessions import BackofficeSessions
from chargewire.store.tables import subscriptions
from chargewire.store.token_store import TokenStore
from tests.conftest import TokenFactory, bearer
from tests.support import memory_channel
from tests.support.foreign_secrets import ANOTHER_SECRET_KEY

V2 = "/public-api/notifications/v2.0"
HARDWARE = load_event_types()["HardwareStatusNotification"].example


@pytest.fixture
def memory() -> Iterator[None]:
    """The memory channel, registered for one test."""
    memory_channel.register()
    yield
    unregister_channel(memory_channel.NAME)
    memory_channel.MAILBOXES.clear()
    memory_channel.PASSPHRASES.clear()


@pytest.fixture
def client(memory: None, api: httpx.AsyncClient) -> httpx.AsyncClient:
    """The in-process API, with the memory channel registered."""
    return api


def _body(mailbox: object = "fleet") -> dict[str, object]:
    return {"via": "memory", "notifications": ["HardwareStatusNotification"], "memory": {"mailbox": mailbox}}


async def test_a_registered_channel_is_subscribed_to_through_the_api_and_read_back_as_sent(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("notifications:manage"))

    created = await client.post(V2, json=_body(), headers=headers)
    read = await client.get(f"{V2}/{created.json()['data']['id']}", headers=headers)

    assert created.status_code == 201
    assert read.json()["data"]["via"] == "memory"
    assert read.json()["data"]["memory"] == {"mailbox": "fleet"}


async def test_a_registered_channel_checks_its_own_section_and_names_the_field(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    refused = await client.post(V2, json=_body("Not A Mailbox"), headers=bearer(await token_factory("admin")))

    assert refused.status_code == 422
    assert refused.json()["errors"] == {"memory.mailbox": ["A mailbox is 1 to 40 of a-z, 0-9 and '-'."]}


async def test_a_registered_channel_is_named_in_the_served_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    assert schema["components"]["schemas"]["SubscriptionIn"]["properties"]["via"]["enum"] == [
        "webhook",
        "kafka",
        "memory",
    ]


async def test_a_registered_channel_section_fields_are_in_the_served_openapi_schema_of_bodies_and_responses(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    for model in ("SubscriptionIn", "SubscriptionOut", "CreatedOut"):
        [section, null] = schemas[model]["properties"]["memory"]["anyOf"]
        assert (section["properties"]["mailbox"]["pattern"], section["required"]) == ("^[a-z0-9-]{1,40}$", ["mailbox"])
        assert section["properties"]["passphrase"]["writeOnly"] is True
        assert null == {"type": "null"}


async def test_an_unregistered_channel_name_is_refused_as_before(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    refused = await api.post(V2, json=_body(), headers=bearer(await token_factory("admin")))

    assert refused.status_code == 422
    assert refused.json()["errors"] == {"via": ["Input should be 'webhook' or 'kafka'."]}


async def test_a_registered_channel_receives_a_published_event_through_the_dispatcher(
    runtime: Runtime, client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    created = await client.post(V2, json=_body(), headers=bearer(await token_factory("admin")))
    [event_id] = await chargewire.publish(HARDWARE, runtime=runtime)
    dispatcher = runtime.dispatcher()

    attempted = await dispatcher.run_once()
    await dispatcher.aclose()

    [message] = memory_channel.MAILBOXES["fleet"]
    assert attempted == 1
    assert (message.event_id, message.subscription.id) == (event_id, created.json()["data"]["id"])
    assert json.loads(message.payload) == HARDWARE


async def _stored_columns(runtime: Runtime, subscription_id: str) -> tuple[object, object]:
    """The subscription's neutral target column, and its secret half decrypted from the neutral blob."""
    columns = (subscriptions.c.target, subscriptions.c.target_secrets_encrypted)
    async with runtime.database.reading() as connection:
        target, sealed = (await connection.execute(select(*columns).where(subscriptions.c.id == subscription_id))).one()
    return target, json.loads(runtime.box.decrypt(sealed))


async def test_a_registered_channel_keeps_its_target_and_secret_in_the_neutral_columns_and_reads_them_back(
    runtime: Runtime, client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("admin"))
    with_secret = _body() | {"memory": {"mailbox": "fleet", "passphrase": "open-sesame"}}
    created = await client.post(V2, json=with_secret, headers=headers)
    subscription_id = created.json()["data"]["id"]

    replaced = await client.put(f"{V2}/{subscription_id}", json=_body("depot"), headers=headers)

    assert replaced.status_code == 200
    assert replaced.json()["data"]["memory"] == {"mailbox": "depot"}
    assert await _stored_columns(runtime, subscription_id) == ({"mailbox": "depot"}, {"passphrase": "open-sesame"})
    assert await runtime.subscriptions.target_secrets(subscription_id) == {"passphrase": "open-sesame"}


async def test_a_registered_channel_sender_reads_its_subscription_secret_through_the_channel_context(
    runtime: Runtime, client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    body = _body() | {"memory": {"mailbox": "fleet", "passphrase": "open-sesame"}}
    await client.post(V2, json=body, headers=bearer(await token_factory("admin")))
    await chargewire.publish(HARDWARE, runtime=runtime)
    dispatcher = runtime.dispatcher()

    await dispatcher.run_once()
    await dispatcher.aclose()

    assert memory_channel.PASSPHRASES["fleet"] == ["open-sesame"]


async def test_a_registered_channel_secret_that_does_not_decrypt_makes_its_subscription_unusable_before_sending(
    runtime: Runtime, client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    body = _body() | {"memory": {"mailbox": "fleet", "passphrase": "open-sesame"}}
    created = await client.post(V2, json=body, headers=bearer(await token_factory("admin")))
    subscription_id = created.json()["data"]["id"]
    foreign = SecretBox(ANOTHER_SECRET_KEY).encrypt(json.dumps({"passphrase": "open-sesame"}))
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(target_secrets_encrypted=foreign)
        )

    found = await StoredTargets(runtime.subscription_store, TokenStore(runtime.database), runtime.box).targets(
        [subscription_id]
    )

    unusable = found[subscription_id].unusable
    assert unusable is not None
    assert unusable.error_class == "secret_undecryptable"


@pytest.fixture
async def operator_cookies(runtime: Runtime) -> dict[str, str]:
    """A signed-in back-office session, as the browser's cookie header."""
    user = await runtime.users.create("operator@example.com", "a long enough password")
    signer = SessionSigner(resolve_secret_key(runtime.settings).value)
    session_id = await BackofficeSessions.on(runtime.database, signer.max_age_s).start(user.id, "127.0.0.1", "pytest")
    session = Session()
    session.sign_in(user.id, session_id)
    return {"Cookie": f"{COOKIE_NAME}={signer.dumps(session)}"}


async def test_a_registered_channel_brings_its_choice_and_fieldset_to_the_back_office_form(
    client: httpx.AsyncClient, operator_cookies: dict[str, str]
) -> None:
    page = await client.get("/backoffice/subscriptions/new?via=memory", headers=operator_cookies)

    assert page.status_code == 200
    assert 'name="via" value="memory" data-via-choice checked> Memory (kept in this process)' in page.text
    assert 'name="memory.mailbox"' in page.text


async def test_a_registered_channel_subscription_shows_its_target_on_the_back_office_pages(
    client: httpx.AsyncClient, token_factory: TokenFactory, operator_cookies: dict[str, str]
) -> None:
    created = await client.post(V2, json=_body(), headers=bearer(await token_factory("admin")))
    subscription_id = created.json()["data"]["id"]

    listed = await client.get("/backoffice/subscriptions", headers=operator_cookies)
    shown = await client.get(f"/backoffice/subscriptions/{subscription_id}", headers=operator_cookies)

    assert "New memory subscription" in listed.text
    assert 'mailbox <span class="mono">fleet</span>' in listed.text
    assert shown.status_code == 200
    assert 'mailbox <span class="mono">fleet</span>' in shown.text

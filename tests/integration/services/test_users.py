"""Operators on both backends: Argon2 hashes, one account per email whatever its case, and sign-in checks."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chargewire.errors import Unauthenticated, ValidationFailed
from chargewire.runtime import Runtime
from chargewire.services.users import WRONG_CREDENTIALS
from chargewire.store.tables import users

PASSWORD = "a long enough password"


async def test_a_created_operator_signs_in_and_the_sign_in_is_recorded(runtime: Runtime) -> None:
    created = await runtime.users.create("Ops@Example.com", PASSWORD)
    assert created.id.startswith("usr_")
    assert created.email == "ops@example.com"
    signed_in = await runtime.users.authenticate(" OPS@example.com", PASSWORD)
    assert signed_in.id == created.id
    [listed] = await runtime.users.list()
    assert listed.last_login_at is not None


async def test_passwords_are_stored_as_argon2id_hashes(runtime: Runtime) -> None:
    await runtime.users.create("ops@example.com", PASSWORD)
    async with runtime.database.reading() as connection:
        stored = (await connection.execute(select(users.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


@pytest.mark.parametrize(
    ("email", "password"), [("ops@example.com", "not the password"), ("nobody@example.com", PASSWORD)]
)
async def test_a_wrong_email_or_password_gets_the_same_answer(runtime: Runtime, email: str, password: str) -> None:
    await runtime.users.create("ops@example.com", PASSWORD)
    with pytest.raises(Unauthenticated) as refused:
        await runtime.users.authenticate(email, password)
    assert refused.value.message == WRONG_CREDENTIALS


async def test_an_email_is_taken_once_whatever_its_case(runtime: Runtime) -> None:
    await runtime.users.create("ops@example.com", PASSWORD)
    with pytest.raises(ValidationFailed) as refused:
        await runtime.users.create("OPS@example.com", PASSWORD)
    assert list(refused.value.errors) == ["email"]


@pytest.mark.parametrize(
    ("email", "password", "field"), [("ops", PASSWORD, "email"), ("ops@example.com", "short", "password")]
)
async def test_unacceptable_emails_and_passwords_are_refused_naming_the_field(
    runtime: Runtime, email: str, password: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await runtime.users.create(email, password)
    assert list(refused.value.errors) == [field]


async def test_a_new_password_replaces_the_old_one(runtime: Runtime) -> None:
    await runtime.users.create("ops@example.com", PASSWORD)
    await runtime.users.set_password("ops@example.com", "another long password")
    with pytest.raises(Unauthenticated):
        await runtime.users.authenticate("ops@example.com", PASSWORD)
    await runtime.users.authenticate("ops@example.com", "another long password")

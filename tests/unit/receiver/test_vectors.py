"""The Python receiver reaches every shared vector's verdict and reason (the other languages run the same file)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from chargewire.receiver import InvalidSignature, verify_webhook_signature, verify_x_signature

VECTORS = json.loads((Path(__file__).parents[3] / "clients" / "test-vectors.json").read_text(encoding="utf-8"))


def _verdict(case: dict[str, Any]) -> str | None:
    body = base64.b64decode(case["body_base64"])
    try:
        if case["check"] == "x-signature":
            verify_x_signature(body, case["headers"], case["api_token"])
        else:
            verify_webhook_signature(body, case["headers"], case["secrets"], case["tolerance_s"], now=case["now"])
    except InvalidSignature as refused:
        return str(refused.reason)
    return None


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_python_receiver_reaches_the_verdict_of_each_shared_vector(case: dict[str, Any]) -> None:
    assert _verdict(case) == case["expected"]["reason"]


def test_vectors_cover_every_reason_and_both_schemes() -> None:
    reasons = {c["expected"]["reason"] for c in VECTORS["cases"]}
    assert reasons == {None, *VECTORS["reasons"]}
    assert {c["check"] for c in VECTORS["cases"]} == {"x-signature", "standard-webhooks"}


def test_header_names_are_matched_whatever_their_case() -> None:
    case = next(c for c in VECTORS["cases"] if c["name"] == "standard webhooks valid")
    lowered = {name.upper(): value for name, value in case["headers"].items()}
    body = base64.b64decode(case["body_base64"])
    verify_webhook_signature(body, lowered, case["secrets"], now=case["now"])

"""The official OCPP JSON schemas (as shipped in the `ocpp` package), to check calls and results.

A call or result that fails its schema produces no event (it is still forwarded). Formats are not
checked: charge points in the field send timestamps without offsets that the derivation still reads.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
import orjson

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"
_PACKAGE_FOLDERS = {OCPP16: "v16", OCPP201: "v201"}
# The 1.6 schema files are named after the action, the 2.0.1 ones after the action and `Request`.
_REQUEST_SUFFIX = {OCPP16: "", OCPP201: "Request"}


@cache
def _validator(version: str, name: str) -> jsonschema_rs.Validator | None:
    folder = resources.files("ocpp") / _PACKAGE_FOLDERS[version] / "schemas"
    schema_file = folder / f"{name}.json"
    if not schema_file.is_file():
        return None
    schema = orjson.loads(schema_file.read_bytes())
    return jsonschema_rs.validator_for(schema, validate_formats=False)


def is_valid_call(version: str, action: str, payload: dict[str, Any]) -> bool:
    """True when `payload` is a valid `action` request of `version` (False for unknown actions)."""
    validator = _validator(version, f"{action}{_REQUEST_SUFFIX[version]}")
    return validator is not None and validator.is_valid(payload)


def is_valid_result(version: str, action: str, payload: dict[str, Any]) -> bool:
    """True when `payload` is a valid answer to an `action` call of `version`."""
    validator = _validator(version, f"{action}Response")
    return validator is not None and validator.is_valid(payload)

"""Where the secret key comes from: `CHARGEWIRE_SECRET_KEY`, or one key file in the data folder.

A configured key always wins. Without one, the embedded SQLite default (and `chargewire demo`) keeps its
key in `<data dir>/secret.key`: made on first use with mode 0600, its path printed once, and read by
`serve`, `demo` and every CLI command alike, so they all encrypt and decrypt with the same key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chargewire.config import Settings
from chargewire.errors import ConfigurationError

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
_ENVIRONMENT = "CHARGEWIRE_SECRET_KEY"


@dataclass(frozen=True, slots=True)
class SecretKey:
    """The secret key and where it came from, for messages about it."""

    value: str
    source: str


def key_file_path(settings: Settings) -> Path:
    """The key file of the embedded default, in the data folder."""
    return Path(settings.data_dir) / KEY_FILE_NAME


def resolve_secret_key(settings: Settings) -> SecretKey:
    """The configured key; on the embedded default (or in the demo) the key file's, made on first use."""
    if settings.secret_key is not None:
        return SecretKey(settings.secret_key.get_secret_value(), _ENVIRONMENT)
    key_file = key_file_path(settings)
    if not (settings.uses_embedded_database or settings.demo_mode):
        raise ConfigurationError(_missing_key_message(key_file))
    if not key_file.exists():
        _create_key_file(key_file)
    return SecretKey(key_file.read_text().strip(), str(key_file))


def _create_key_file(key_file: Path) -> None:
    """Write a new random key to `key_file` (mode 0600), unless another process made it first."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=key_file.parent, prefix=".secret-key-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        # A hard link appears whole or not at all: a process starting at the same moment reads the same key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, key_file)
            logger.warning("made a secret key for the embedded database in %s (keep it with the database)", key_file)
    finally:
        os.unlink(temporary)


def _missing_key_message(key_file: Path) -> str:
    message = (
        f"{_ENVIRONMENT} is not set. It encrypts stored tokens and secrets: set it to 32 or more random "
        "characters, for example the output of `openssl rand -base64 32`."
    )
    if key_file.exists():
        message += (
            f" The embedded SQLite default (and `make demo`) keeps its key in {key_file}: to use the secrets "
            f"stored with it, set {_ENVIRONMENT}=$(cat {key_file})."
        )
    return message


def key_mismatch_message(key: SecretKey, key_file: Path) -> str:
    """What to say when `key` does not decrypt the secrets already stored."""
    hint = f" The embedded default's key is in {key_file}." if key.source != str(key_file) and key_file.exists() else ""
    return (
        f"The secret key from {key.source} does not decrypt the tokens and secrets already stored: they were "
        f"written with another key. Use the key they were written with; nothing was written with this one.{hint}"
    )

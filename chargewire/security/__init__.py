"""Secrets: encryption at rest, API tokens and signing secrets."""

from chargewire.security.secret_box import SecretBox
from chargewire.security.tokens import new_api_token, new_signing_secret, token_hash

__all__ = ["SecretBox", "new_api_token", "new_signing_secret", "token_hash"]

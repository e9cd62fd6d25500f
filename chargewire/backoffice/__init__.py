"""The back office's Notifications section: web pages on the same services and rules as the API."""

from chargewire.backoffice.app import create_backoffice
from chargewire.backoffice.rendering import PREFIX

__all__ = ["PREFIX", "create_backoffice"]

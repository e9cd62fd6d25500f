"""The TLS client context the connector opens a cluster's broker connections with (SSL and SASL_SSL clusters).

The broker's certificate is checked against the subscription's CA, or the same public roots as the webhook
channel (certifi) when it gives none, and against the broker's name as configured or advertised. The client
certificate and its key never touch a disk: `ssl` loads a chain only from a path, so they are written to an
anonymous in-memory file (`memfd_create`, Linux) and read through `/proc/self/fd`; where that is missing, to
a file in a fresh 0700 directory, removed as soon as it is read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator

import certifi


class ClientKeyRefused(ValueError):
    """The client certificate or key cannot be used (unreadable PEM, or a key that is not the certificate's)."""


def broker_context(ca_pem: str | None, certificate_pem: str | None, key_pem: str | None) -> ssl.SSLContext:
    """A context that verifies brokers against `ca_pem` (or public roots) and presents the client certificate."""
    if ca_pem:
        context = ssl.create_default_context(cadata=ca_pem)
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    if certificate_pem and key_pem:
        try:
            with _in_memory_file(f"{certificate_pem.strip()}\n{key_pem.strip()}\n") as path:
                context.load_cert_chain(path)
        except ssl.SSLError as exc:
            raise ClientKeyRefused(f"the client certificate or key cannot be used ({exc.reason})") from exc
    return context


@contextlib.contextmanager
def _in_memory_file(text: str) -> Iterator[str]:
    """A path that reads `text`, for as long as the block runs."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("chargewire-kafka-client", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, text.encode())
            yield f"/proc/self/fd/{descriptor}"
        finally:
            os.close(descriptor)
        return
    directory = tempfile.mkdtemp(prefix="chargewire-kafka-")  # 0700
    try:
        path = os.path.join(directory, "client.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)

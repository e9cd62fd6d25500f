"""The Apache Kafka broker jars from Maven Central, fetched once with `mvn` into a cache folder.

`python -m chargewire.devtools.kafka_jars` fetches them (for `make test` to do it up front) and prints the folder.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("kafka-pom.xml")
CACHE_ENV = "CHARGEWIRE_KAFKA_CACHE"
_MVN_TIMEOUT_S = 900
_STALE_PARTIAL_S = 3600


class KafkaJarsUnavailable(RuntimeError):
    """The Kafka jars are not cached and could not be fetched (mvn missing or failing)."""


def kafka_version() -> str:
    """The Kafka version the pom asks for."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise KafkaJarsUnavailable(f"no <kafka.version> property in {POM}")
    return match.group(1).strip()


def default_cache_root() -> Path:
    """Where versioned jar folders live: $CHARGEWIRE_KAFKA_CACHE, else ~/.cache/chargewire."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "chargewire"


def ensure_kafka_jars(cache_dir: Path | None = None) -> Path:
    """The folder of broker jars (`<cache_dir>/kafka-<version>/libs`), fetched with mvn on first use."""
    version = kafka_version()
    home = (cache_dir or default_cache_root()) / f"kafka-{version}"
    libs = home / "libs"
    if _is_complete(libs, version):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(home)
    if libs.exists():
        shutil.rmtree(libs)  # not ours and not complete: fetch afresh
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaJarsUnavailable(
            "Apache Maven (`mvn`) is not installed, so the Kafka broker jars cannot be fetched: "
            "install it (Debian package `maven`) or point CHARGEWIRE_KAFKA_CACHE at a cache that has "
            f"kafka-{version}/libs."
        )
    # Download into a sibling temp folder and rename it into place only when complete, so an interrupted
    # fetch never looks like a finished one.
    partial = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=home))
    partial.chmod(0o755)  # mkdtemp makes it private; the cache is not secret
    try:
        _fetch(mvn, partial)
        if not _is_complete(partial, version):
            raise KafkaJarsUnavailable(f"mvn finished but kafka_2.13-{version}.jar is missing from {partial}")
        try:
            partial.rename(libs)
        except OSError:
            # Another process finished first: its folder is as good as ours.
            if not _is_complete(libs, version):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    logger.info("Kafka %s jars ready in %s", version, libs)
    return libs


def _is_complete(libs: Path, version: str) -> bool:
    return (libs / f"kafka_2.13-{version}.jar").is_file()


def _remove_stale_partials(home: Path) -> None:
    cutoff = time.time() - _STALE_PARTIAL_S
    for leftover in home.glob("libs.partial-*"):
        if leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)


def _fetch(mvn: str, target: Path) -> None:
    command = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={target}",
    ]
    logger.info("fetching Kafka jars: %s", " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaJarsUnavailable(f"mvn did not finish within {_MVN_TIMEOUT_S}s fetching the Kafka jars") from exc
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise KafkaJarsUnavailable(f"mvn failed ({result.returncode}) fetching the Kafka jars:\n{tail}")


def main() -> None:
    """Fetch the jars (if needed) and print their folder."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_kafka_jars())


if __name__ == "__main__":
    main()

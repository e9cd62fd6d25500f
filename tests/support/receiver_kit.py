"""The receiver kit's example receivers, one per language: how to build each and the command that runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET_KEY
from tests.support.processes import migrated_with_admin_token

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
LANGUAGES = ("python", "typescript", "go", "java")


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def build_receiver(language: str, workdir: Path) -> list[str]:
    """Build the example receiver of `language` (dependencies from the registries, cached) and return the
    command that starts it; it reads PORT, CHARGEWIRE_SIGNING_SECRETS, CHARGEWIRE_API_TOKEN, RECEIVER_RECORD_FILE."""
    if language == "python":
        return [sys.executable, str(CLIENTS / "python" / "examples" / "fastapi_receiver.py")]
    if language == "typescript":
        folder = CLIENTS / "typescript"
        if not _npm_installed(folder):
            _run(["npm", "ci", "--no-audit", "--no-fund"], folder)
        _run(["npx", "tsc", "-p", "tsconfig.json"], folder)
        return ["node", str(folder / "dist" / "examples" / "express-receiver.js")]
    if language == "go":
        binary = workdir / "go-receiver"
        _run(["go", "build", "-o", str(binary), "./examples/receiver"], CLIENTS / "go")
        return [str(binary)]
    if language == "java":
        folder = CLIENTS / "java"
        classpath_file = workdir / "classpath.txt"
        _run(
            [
                "mvn",
                "-B",
                "-ntp",
                "-q",
                "test-compile",
                "dependency:build-classpath",
                "-Dmdep.includeScope=test",
                f"-Dmdep.outputFile={classpath_file}",
            ],
            folder,
        )
        classpath = ":".join(
            [str(folder / "target" / "classes"), str(folder / "target" / "test-classes"), classpath_file.read_text()]
        )
        return ["java", "-cp", classpath, "io.chargewire.receiver.examples.ReceiverExample"]
    raise ValueError(f"no example receiver for {language}")


def _npm_installed(folder: Path) -> bool:
    """Whether `npm ci` installed `folder`'s package-lock.json as it is now (`make test-client-typescript` just
    did): npm writes the hidden lockfile in node_modules when an install is complete."""
    installed = folder / "node_modules" / ".package-lock.json"
    return installed.exists() and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime


def prepared_service(tmp_path: Path, database_url: str | None = None) -> tuple[dict[str, str], str]:
    """Settings for a `chargewire serve` that may deliver to loopback, and an admin token; on `database_url`
    (migrated here), or a fresh SQLite file."""
    env = {
        "CHARGEWIRE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp_path / 'chargewire.db'}",
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    return env, migrated_with_admin_token(env, "kit")

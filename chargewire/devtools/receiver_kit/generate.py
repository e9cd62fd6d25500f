"""Write the receiver kit's generated files, or (`--check`) fail when one is not current.

scripts/generate-receiver-kit           # after changing the catalog or the signing code
scripts/generate-receiver-kit --check   # what the tests and CI run
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from chargewire.devtools.receiver_kit import emit_go, emit_java, emit_python, emit_typescript, vectors
from chargewire.devtools.receiver_kit.model import Catalog, load_catalog

ROOT = Path(__file__).resolve().parents[3]
PYTHON_TYPES = "chargewire/receiver/events.py"

TYPE_FILES: dict[str, Callable[[Catalog], str]] = {
    PYTHON_TYPES: emit_python.emit,
    "clients/typescript/src/events.ts": emit_typescript.emit,
    "clients/go/events.go": emit_go.emit,
    "clients/java/src/main/java/io/chargewire/receiver/Events.java": emit_java.emit,
}
VECTORS_FILE = "clients/test-vectors.json"


def generated() -> dict[str, str]:
    """Every generated file's path (from the repository root) and expected text."""
    catalog = load_catalog()
    files = {path: emit(catalog) for path, emit in TYPE_FILES.items()}
    files[PYTHON_TYPES] = _ruff_formatted(files[PYTHON_TYPES], PYTHON_TYPES)
    files[VECTORS_FILE] = vectors.render()
    return files


def stale(root: Path = ROOT) -> list[str]:
    """The generated files whose text differs from what the generators make now."""
    return [path for path, text in generated().items() if not _same(root / path, text)]


def main(argv: list[str]) -> int:
    """Write the files, or with `--check` list the stale ones and return 1."""
    if "--check" in argv:
        outdated = stale()
        for path in outdated:
            print(f"{path} is not current: run scripts/generate-receiver-kit", file=sys.stderr)
        return 1 if outdated else 0
    for path, text in generated().items():
        target = ROOT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _ruff_formatted(text: str, path: str) -> str:
    """`text` as `ruff format` leaves it, so that the formatting check and the staleness check agree."""
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "format", "--stdin-filename", path, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def _same(path: Path, text: str) -> bool:
    return path.exists() and path.read_text(encoding="utf-8") == text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

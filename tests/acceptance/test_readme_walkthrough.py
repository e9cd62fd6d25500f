"""The README's shell examples, run in order in a fresh bash against a real `chargewire serve`.

The blocks marked `<!-- readme-walkthrough -->` are run as one script, as a newcomer would paste them into a
second terminal while the service runs on the embedded SQLite default with no key configured. Each
`# NNN` line under a `curl` is the status that call must answer, so the README cannot drift from the product.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from tests.support.processes import running_server

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- readme-walkthrough"
BLOCK = re.compile(r"^<!-- readme-walkthrough.*?-->\n```sh\n(.*?)^```", re.M | re.S)
EXPECTED_STATUS = re.compile(r"^# (\d{3}) ", re.M)
README_URL = "http://127.0.0.1:8000"
STATUS_LINE = "README-STATUS"
# A curl that also prints the status after the body, so the script's output can be checked call by call.
CURL_WITH_STATUS = f"curl() {{ command curl -sS -w '\\n{STATUS_LINE} %{{http_code}}\\n' \"$@\"; }}\n"


def walkthrough_blocks() -> list[str]:
    """The README's marked shell blocks, in order."""
    text = README.read_text()
    blocks = BLOCK.findall(text)
    assert len(blocks) == text.count(MARKER), "every readme-walkthrough marker must be followed by a ```sh block"
    return blocks


def test_readme_examples_run_in_order_in_a_fresh_shell_and_answer_as_shown(tmp_path: Path) -> None:
    blocks = walkthrough_blocks()
    expected = [int(code) for block in blocks for code in EXPECTED_STATUS.findall(block)]
    assert expected, "the README's examples show no status to check"
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
    }
    port = free_port()
    script = (
        "set -euo pipefail\n" + CURL_WITH_STATUS + "\n".join(blocks).replace(README_URL, f"http://127.0.0.1:{port}")
    )
    with running_server(env, port):
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    answered = [int(code) for code in re.findall(rf"^{STATUS_LINE} (\d{{3}})$", result.stdout, re.M)]
    assert answered == expected, result.stdout


def test_readme_states_the_number_of_event_types_the_catalog_has() -> None:
    stated = re.search(r"lists the (\d+) event types", README.read_text())
    assert stated is not None
    assert int(stated[1]) == len(load_event_types())

"""The `chargewire-receiver` distribution builds from clients/python and works on the standard library alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[3] / "clients"

# Runs with -S (no site-packages): only the standard library and the unpacked wheel are importable.
CHECK = """
import base64, json, sys
sys.path.insert(0, sys.argv[1])
import chargewire.receiver as kit
assert "chargewire.receiver.fastapi" not in sys.modules
vectors = json.load(open(sys.argv[2]))["cases"]
for case in vectors:
    body = base64.b64decode(case["body_base64"])
    try:
        if case["check"] == "x-signature":
            kit.verify_x_signature(body, case["headers"], case["api_token"])
        else:
            kit.verify_webhook_signature(body, case["headers"], case["secrets"], case["tolerance_s"], now=case["now"])
        reason = None
    except kit.InvalidSignature as refused:
        reason = str(refused.reason)
    assert reason == case["expected"]["reason"], case["name"]
print(len(vectors), kit.__file__)
"""


def test_standalone_wheel_passes_every_vector_without_the_service_installed(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", CLIENTS / "python"], check=True)
    (wheel,) = (tmp_path / "dist").glob("chargewire_receiver-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", site, wheel], check=True)
    done = subprocess.run(
        [sys.executable, "-S", "-c", CHECK, str(site), str(CLIENTS / "test-vectors.json")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    count, origin = done.stdout.split()
    assert int(count) > 20
    assert origin.startswith(str(site))

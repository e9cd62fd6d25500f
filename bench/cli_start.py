"""CPU of one `chargewire` command line run, per command: what each CLI subprocess of the tests costs.

Runs, in each given venv in turn (so that a shared machine's load falls on every venv alike), on a fresh SQLite
database: `--help`, `db upgrade`, `tokens create/list`, `subscriptions create/list/show/delete`, `users
create/list`, and `serve` until it answers `/api/v1/event-types`. A run's figure is the process's user+system CPU
(what a loaded machine inflates least); the table gives each command's median, min and max over the runs.
Usage: python -m bench.cli_start [--runs 5] [--venv /tmp/ref/.venv --venv .venv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from chargewire.devtools.postgres import free_port

_SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _command(venv: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    """The CPU seconds of `chargewire ARGS` from `venv`, and what it printed."""
    before = _children_cpu_s()
    done = subprocess.run([str(venv / "bin" / "chargewire"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"chargewire {' '.join(args)} failed: {done.stderr}")
    return _children_cpu_s() - before, done.stdout


def _serve_until_answering(venv: Path, env: dict[str, str]) -> float:
    """The CPU seconds `chargewire serve` spends until it first answers."""
    port = free_port()
    command = [str(venv / "bin" / "chargewire"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/event-types", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_S
    finally:
        process.terminate()
        process.wait()


def _one_pass(venv: Path, folder: Path, run: int) -> dict[str, float]:
    """Every command once, on a new database in `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    env = {
        **os.environ,
        "CHARGEWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'chargewire.db'}",
        "CHARGEWIRE_SECRET_KEY": _SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(folder / "data"),
        "CHARGEWIRE_CONFIG": str(folder / "absent.toml"),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    cpu: dict[str, float] = {}
    cpu["--help"], _ = _command(venv, env, "--help")
    cpu["db upgrade"], _ = _command(venv, env, "db", "upgrade")
    cpu["tokens create"], made = _command(
        venv, env, "tokens", "create", "--name", "bench", "--scope", "admin", "--json"
    )
    cpu["tokens list"], _ = _command(venv, env, "tokens", "list", "--json")
    hook = ["--url", "http://127.0.0.1:9/hook", "--event", "BootNotification", "--json"]
    token = json.loads(made)["id"]
    cpu["subscriptions create"], created = _command(venv, env, "subscriptions", "create", "--token-id", token, *hook)
    subscription = json.loads(created)["id"]
    cpu["subscriptions list"], _ = _command(venv, env, "subscriptions", "list", "--json")
    cpu["subscriptions show"], _ = _command(venv, env, "subscriptions", "show", subscription, "--json")
    cpu["subscriptions delete"], _ = _command(venv, env, "subscriptions", "delete", subscription)
    user = ["--email", f"ops{run}@example.com", "--password", "a long operator password"]
    cpu["users create"], _ = _command(venv, env, "users", "create", *user)
    cpu["users list"], _ = _command(venv, env, "users", "list", "--json")
    cpu["serve, until it answers"] = _serve_until_answering(venv, env)
    return cpu


def main() -> None:
    """Measure each venv's commands `--runs` times, the venvs alternated, and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--venv", type=Path, action="append", help="a venv with chargewire installed; repeatable")
    options = parser.parse_args()
    venvs: list[Path] = options.venv or [Path(sys.executable).parent.parent]
    figures: dict[str, dict[Path, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="chargewire-cli-start-") as scratch:
        for run in range(options.runs):
            for venv in venvs:
                for command, seconds in _one_pass(venv, Path(scratch) / "run", run).items():
                    figures[command][venv].append(seconds)
    print("| command, CPU s (median, min-max) | " + " | ".join(str(venv) for venv in venvs) + " |")
    print("|---|" + "---|" * len(venvs))
    for command, by_venv in figures.items():
        cells = [
            f"{statistics.median(by_venv[venv]):.2f} ({min(by_venv[venv]):.2f}-{max(by_venv[venv]):.2f})"
            for venv in venvs
        ]
        print(f"| {command} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""The command line starts light: building its commands and printing any help loads none of the service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Databases and their drivers, HTTP clients and servers, the web framework, Kafka, and the service's own
# packages that load them: a command imports these in its body, when it runs.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "sqlite3",
    "_sqlite3",
    "psycopg",
    "fastapi",
    "starlette",
    "jinja2",
    "uvicorn",
    "aiohttp",
    "httpx",
    "websockets",
    "confluent_kafka",
    "chargewire.runtime",
    "chargewire.dispatch",
    "chargewire.store",
    "chargewire.services",
    "chargewire.kafka",
    "chargewire.web",
    "chargewire.api",
    "chargewire.backoffice",
    "chargewire.sources",
    "chargewire.demo",
)

# Prints `--help` of every command and group, in one process, then what that process has loaded.
_EVERY_HELP = """
import contextlib, io, json, sys
import typer.main
from typer.core import TyperGroup
import chargewire.cli

def paths(command, path):
    yield path
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from paths(sub, [*path, name])

root = typer.main.get_command(chargewire.cli.app)
helps = {}
for path in paths(root, []):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        root.main([*path, "--help"], prog_name="chargewire", standalone_mode=False)
    helps[" ".join(path)] = out.getvalue()
print(json.dumps({"helps": helps, "modules": sorted(sys.modules)}))
"""


def _every_help() -> tuple[dict[str, str], list[str]]:
    done = subprocess.run([sys.executable, "-c", _EVERY_HELP], capture_output=True, text=True, check=True)
    printed = json.loads(done.stdout)
    return printed["helps"], printed["modules"]


def _is_heavy(module: str) -> bool:
    return any(module == heavy or module.startswith(f"{heavy}.") for heavy in HEAVY)


# Commands a user types: each must be among those whose help is printed (a rename or a lost command fails here).
COMMANDS = {
    "",
    "serve",
    "worker",
    "demo",
    "listen",
    "simulate",
    "db",
    "db upgrade",
    "db current",
    "db stats",
    "events",
    "events list",
    "events validate",
    "events publish",
    "tokens",
    "tokens create",
    "tokens list",
    "tokens revoke",
    "subscriptions",
    "subscriptions list",
    "subscriptions show",
    "subscriptions create",
    "subscriptions delete",
    "users",
    "users create",
    "users list",
    "dev",
    "dev kafka",
    "dev csms",
    "ocpp",
    "ocpp serve",
    "ocpp charge-points",
}


def test_every_command_prints_its_help_without_loading_a_database_http_web_or_kafka_module() -> None:
    helps, modules = _every_help()
    assert COMMANDS - set(helps) == set()
    assert [path for path, text in helps.items() if "Usage:" not in text] == []
    assert [module for module in modules if _is_heavy(module)] == []


# What `worker` and `ocpp serve` run; `serve` loads the web app and its server when it starts serving.
_WORKER_MODULES = """
import json, sys
import chargewire.cli.serving
print(json.dumps(sorted(sys.modules)))
"""
SERVING_ONLY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "chargewire.web",
    "chargewire.api",
    "chargewire.backoffice",
    "chargewire.sources",
    "chargewire.dispatch.dispatcher",
)


def test_the_worker_loads_no_web_app_server_or_ocpp_tap_and_a_runtime_no_delivery_loop_before_it_runs() -> None:
    done = subprocess.run([sys.executable, "-c", _WORKER_MODULES], capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout)
    assert "chargewire.runtime" in modules
    loaded = [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in SERVING_ONLY)]
    assert loaded == []


def test_python_m_chargewire_is_the_same_command_line_as_the_script() -> None:
    script = subprocess.run(
        [str(Path(sys.executable).with_name("chargewire")), "tokens", "--help"], capture_output=True, text=True
    )
    module = subprocess.run([sys.executable, "-m", "chargewire", "tokens", "--help"], capture_output=True, text=True)
    assert (module.returncode, module.stdout) == (script.returncode, script.stdout)
    assert "Usage: chargewire tokens" in module.stdout

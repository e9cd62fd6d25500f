"""The command line starts light: building its commands and printing any help loads none of the service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET_KEY

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


# What only changing the schema, delivering, serving or the other database needs: the commands that read and write
# the database through a runtime load none of it while they run.
NOT_FOR_RECORDS = (
    "alembic",
    "mako",
    "jsonschema",
    "confluent_kafka",
    "fastapi",
    "uvicorn",
    "chargewire.channels.webhook",
    "chargewire.kafka.channel",
    "chargewire.kafka.producers",
    "chargewire.dispatch.dispatcher",
    "chargewire.store.dialects.postgresql",
    "chargewire.store.dialects.postgresql_wakeups",
)

# Runs each command in one process, as the `chargewire` script would, then prints what that process has loaded.
_RECORD_COMMANDS = """
import contextlib, io, json, sys
import typer.main
import chargewire.cli

root = typer.main.get_command(chargewire.cli.app)

def run(*args):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        root.main(list(args), prog_name="chargewire", standalone_mode=False)
    return out.getvalue()

token = json.loads(run("tokens", "create", "--name", "ops", "--scope", "admin", "--json"))["id"]
run("tokens", "list", "--json")
created = run("subscriptions", "create", "--token-id", token, "--url", "https://hooks.example.com/x",
              "--event", "BootNotification", "--json")
subscription = json.loads(created)["id"]
run("subscriptions", "list", "--json")
run("subscriptions", "show", subscription, "--json")
run("subscriptions", "delete", subscription)
run("users", "create", "--email", "ops@example.com", "--password", "a long operator password")
run("users", "list", "--json")
run("db", "current")
print(json.dumps(sorted(sys.modules)))
"""


def test_the_token_subscription_user_and_schema_commands_run_without_alembic_kafka_http_or_postgresql_modules(
    sqlite_template: Path, tmp_path: Path
) -> None:
    database = tmp_path / "chargewire.db"
    shutil.copyfile(sqlite_template, database)
    env = {
        **os.environ,
        "CHARGEWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
    }
    done = subprocess.run([sys.executable, "-c", _RECORD_COMMANDS], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    assert "chargewire.runtime" in modules
    assert [m for m in modules if any(m == name or m.startswith(f"{name}.") for name in NOT_FOR_RECORDS)] == []

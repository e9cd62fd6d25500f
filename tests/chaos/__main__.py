"""`python -m tests.chaos`: run the chaos suite, print a table per store, write the JSON result."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from chargewire.devtools.kafka_broker import KafkaBroker
from tests.chaos.report import StoreResult, table, write_json
from tests.chaos.scenario import LONG, SHORT, run_store


def main() -> int:
    """Run the chosen profile on each store; exit 1 when any invariant broke."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--profile", choices=("long", "short"), default="long")
    parser.add_argument("--stores", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--json", type=Path, default=Path("chaos-result.json"), help="where to write the result")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    profile = LONG if arguments.profile == "long" else SHORT
    results: list[StoreResult] = []
    # Kept after the run: the processes' logs say why a broken invariant broke.
    folder = Path(tempfile.mkdtemp(prefix="chargewire-chaos-"))
    with KafkaBroker() as broker:
        for store in arguments.stores.split(","):
            results.append(run_store(store, profile, broker, folder / store))
            print(table(results[-1]), flush=True)
            print(f"process logs: {folder / store / 'logs'}", flush=True)
    write_json(arguments.json, results, " ".join(["python -m tests.chaos", *sys.argv[1:]]))
    print(f"result written to {arguments.json}")
    return 1 if any(result.violations for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Installs `bench.load_probe` in a `chargewire serve` or `worker` started with CHARGEWIRE_BENCH_PROBE=<folder>.

`bench.load --probe` puts this folder first on PYTHONPATH, so Python imports it at start-up in every process it
starts; any other command runs as it would without it.
"""

import os
import sys
from pathlib import Path

if os.environ.get("CHARGEWIRE_BENCH_PROBE") and sys.argv[1:2] in (["serve"], ["worker"]):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.load_probe import PROBE_FOLDER_ENV, install

    install(Path(os.environ[PROBE_FOLDER_ENV]))

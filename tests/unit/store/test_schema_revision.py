"""The schema revision this version ships is read from the migrations' file names, as Alembic reads it from them."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from chargewire.store.migrate import alembic_config
from chargewire.store.schema_revision import head_revision


def test_the_newest_migration_file_names_alembics_head_and_every_file_starts_with_its_revision() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    assert [
        script.revision for script in scripts.walk_revisions() if not Path(script.path).name.startswith(script.revision)
    ] == []

"""The WAL checkpointer copies back four times a second while many pages are written, once a second otherwise."""

from __future__ import annotations

from chargewire.store.dialects.sqlite_checkpoint import Checkpoint, CheckpointPace

QUICK_S, QUIET_S = 0.25, 1.0


def _paced(*found: tuple[Checkpoint | None, float]) -> float:
    pace = CheckpointPace(now=0.0)
    for checkpoint, at in found:
        pace.checkpointed(checkpoint, at)
    return pace.interval_s


def test_a_checkpointer_starts_at_the_quick_pace() -> None:
    assert CheckpointPace(now=0.0).interval_s == QUICK_S


def test_a_wal_that_gained_few_pages_since_the_last_checkpoint_is_checkpointed_at_the_quiet_pace() -> None:
    assert _paced((Checkpoint(complete=True, log_frames=650), 1.0)) == QUIET_S


def test_a_wal_that_gained_many_pages_since_the_last_checkpoint_is_checkpointed_at_the_quick_pace() -> None:
    assert _paced((Checkpoint(complete=True, log_frames=650), 0.25)) == QUICK_S


def test_a_wal_started_over_after_a_complete_checkpoint_counts_its_pages_from_zero() -> None:
    busy = _paced((Checkpoint(complete=True, log_frames=300), 0.25), (Checkpoint(complete=True, log_frames=290), 0.5))
    assert busy == QUICK_S


def test_an_idle_wal_that_was_copied_back_whole_is_checkpointed_at_the_quiet_pace() -> None:
    idle = _paced(
        (Checkpoint(complete=True, log_frames=5_000), 0.25), (Checkpoint(complete=True, log_frames=5_000), 1.25)
    )
    assert idle == QUIET_S


def test_a_wal_readers_kept_from_being_copied_counts_only_what_it_gained() -> None:
    kept = _paced(
        (Checkpoint(complete=False, log_frames=5_000), 0.25), (Checkpoint(complete=False, log_frames=5_200), 1.25)
    )
    assert kept == QUIET_S


def test_a_checkpoint_that_did_not_run_is_tried_again_at_the_quick_pace() -> None:
    assert _paced((Checkpoint(complete=True, log_frames=10), 1.0), (None, 2.0)) == QUICK_S

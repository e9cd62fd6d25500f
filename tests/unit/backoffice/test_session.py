"""Signed session cookies: what they carry comes back unchanged; anything tampered, foreign or old does not."""

from __future__ import annotations

from chargewire.backoffice.session import Session, SessionSigner

KEY = "a-secret-key-of-more-than-thirty-two-characters"


class Clock:
    """A settable time source."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _signed_in(clock: Clock) -> Session:
    session = Session(issued_at=clock.now)
    session.sign_in("usr_01M86FPY88D4WYTJB3MEWT2ZAV", "session-id")
    session.issued_at = clock.now
    session.flash("ok", "Subscription saved.")
    return session


def test_a_signed_session_reads_back_the_same() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, clock=clock)
    session = _signed_in(clock)
    loaded = signer.loads(signer.dumps(session))
    assert loaded is not None
    assert (loaded.user_id, loaded.csrf, loaded.flashes) == (session.user_id, session.csrf, session.flashes)


def test_a_changed_payload_is_refused() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, clock=clock)
    payload, signature = signer.dumps(_signed_in(clock)).split(".")
    forged = Session(user_id="usr_01M86FPY88D4WYTJB3MEWT2ZAW", csrf="x", issued_at=clock.now)
    forged_payload = signer.dumps(forged).split(".")[0]
    assert signer.loads(f"{forged_payload}.{signature}") is None
    assert signer.loads(f"{payload}.{signature[:-2]}AA") is None
    assert signer.loads(payload) is None


def test_a_cookie_signed_with_another_key_is_refused() -> None:
    clock = Clock()
    cookie = SessionSigner("another-secret-key-of-more-than-thirty-two-chars", clock=clock).dumps(_signed_in(clock))
    assert SessionSigner(KEY, clock=clock).loads(cookie) is None


def test_a_session_expires_after_its_maximum_age() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, max_age_s=3600, clock=clock)
    cookie = signer.dumps(_signed_in(clock))
    clock.now += 3599
    assert signer.loads(cookie) is not None
    clock.now += 2
    assert signer.loads(cookie) is None


def test_a_session_issued_in_the_future_is_refused() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, clock=clock)
    cookie = signer.dumps(_signed_in(Clock(clock.now + 3600)))
    assert signer.loads(cookie) is None


def test_garbage_cookies_are_refused_without_errors() -> None:
    signer = SessionSigner(KEY)
    for value in ("", ".", "abc.def", "!!!.???", "e30.e30", "a" * 5000):
        assert signer.loads(value) is None


def test_signing_in_replaces_the_csrf_token() -> None:
    session = Session()
    before = session.csrf_token
    session.sign_in("usr_01M86FPY88D4WYTJB3MEWT2ZAV", "session-id")
    assert session.csrf_token != before


def test_a_fresh_session_is_only_sent_once_a_form_needs_its_token() -> None:
    session = Session()
    assert not session.modified
    assert session.csrf_token
    assert session.modified


def test_flashes_are_shown_once() -> None:
    session = Session()
    session.flash("error", "Not now.")
    assert session.pop_flashes() == [("error", "Not now.")]
    assert session.pop_flashes() == []


def test_signing_out_forgets_the_user_and_the_token() -> None:
    session = Session()
    session.sign_in("usr_01M86FPY88D4WYTJB3MEWT2ZAV", "session-id")
    token = session.csrf_token
    session.sign_out()
    assert session.user_id is None
    assert session.csrf_token != token

"""Back-office sessions kept on the server, and throttled sign-in, against a real `chargewire serve`."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.integration.backoffice.conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, Backoffice
from tests.support.processes import cli

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(browser: httpx.Client, path: str) -> str:
    found = _CSRF.search(browser.get(path).text)
    assert found is not None
    return found[1]


def _sign_in(browser: httpx.Client, email: str = OPERATOR_EMAIL, password: str = OPERATOR_PASSWORD) -> httpx.Response:
    form = {"email": email, "password": password, "csrf_token": _csrf(browser, "/backoffice/sign-in")}
    return browser.post("/backoffice/sign-in", data=form)


def _browser(backoffice: Backoffice) -> httpx.Client:
    return httpx.Client(base_url=backoffice.base_url, follow_redirects=False)


def _signed_in(browser: httpx.Client) -> bool:
    return browser.get("/backoffice/overview").status_code == 200


def test_a_copied_cookie_stops_working_once_its_session_signs_out(backoffice: Backoffice) -> None:
    with _browser(backoffice) as browser, _browser(backoffice) as copy:
        assert _sign_in(browser).status_code == 303
        copy.cookies.update(browser.cookies)
        assert _signed_in(copy)
        browser.post("/backoffice/sign-out", data={"csrf_token": _csrf(browser, "/backoffice/overview")})
        assert not _signed_in(browser)
        assert not _signed_in(copy)


def test_sign_out_all_sessions_ends_every_browser_of_the_operator_and_lists_them_first(
    backoffice: Backoffice,
) -> None:
    with _browser(backoffice) as laptop, _browser(backoffice) as phone:
        assert _sign_in(laptop).status_code == 303
        phone.headers["User-Agent"] = "phone-browser/1.0"
        assert _sign_in(phone).status_code == 303
        listed = laptop.get("/backoffice/sessions")
        assert listed.status_code == 200
        assert "phone-browser/1.0" in listed.text
        assert "this session" in listed.text
        ended = laptop.post(
            "/backoffice/sessions/sign-out-all", data={"csrf_token": _csrf(laptop, "/backoffice/sessions")}
        )
        assert ended.status_code == 303
        assert not _signed_in(laptop)
        assert not _signed_in(phone)


def test_wrong_passwords_in_a_row_make_the_client_wait_even_with_the_right_one(backoffice: Backoffice) -> None:
    email, password = f"guessed-{uuid.uuid4().hex[:8]}@example.com", "the right long password"
    cli(backoffice.env, "users", "create", "--email", email, "--password", password)
    with _browser(backoffice) as guesser:
        answers = [_sign_in(guesser, email, f"wrong password {n}").status_code for n in range(3)]
        assert answers == [401, 401, 401]
        refused = _sign_in(guesser, email, password)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Too many failed sign-ins" in refused.text
        assert not _signed_in(guesser)
    # Another account from the same client is not held by this one's failures.
    with _browser(backoffice) as operator:
        assert _sign_in(operator).status_code == 303

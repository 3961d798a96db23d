"""Account input rules, login lockout arithmetic and UI language negotiation (pure)."""

import pytest

from voice_server.accounts import lockout, validate
from voice_server.accounts.codes import display, normalise
from voice_server.web.i18n import MESSAGES, negotiate, translator


def test_user_names_are_lower_case_slugs() -> None:
    assert validate.user_name(" Sato ") == "sato"
    for bad in ["", "a b", "-x", "x" * 65, "佐藤", "a/b"]:
        with pytest.raises(validate.AccountError):
            validate.user_name(bad)


def test_display_names_and_passwords_have_bounds() -> None:
    assert validate.display_name(" 佐藤 ") == "佐藤"
    for bad in ["", " ", "a\x00", "x" * 101, "a\nb"]:
        with pytest.raises(validate.AccountError):
            validate.display_name(bad)
    with pytest.raises(validate.AccountError):
        validate.password("short")
    with pytest.raises(validate.AccountError):
        validate.role("root")


def test_five_failures_lock_an_account_exponentially_up_to_an_hour() -> None:
    state = None
    for _ in range(4):
        state = lockout.after_failure(state, 100.0, lockout.USER_THRESHOLD)
        assert lockout.remaining(state, 100.0) == 0
    state = lockout.after_failure(state, 100.0, lockout.USER_THRESHOLD)
    assert lockout.remaining(state, 100.0) == 30
    state = lockout.after_failure(state, 200.0, lockout.USER_THRESHOLD)
    assert lockout.remaining(state, 200.0) == 60
    assert lockout.lock_seconds(40, 5) == lockout.MAX_SECONDS
    assert lockout.current(state, 200.0 + lockout.FORGET_SECONDS + 1).failures == 0


def test_addresses_get_a_higher_threshold_than_accounts() -> None:
    assert lockout.threshold_for("addr:10.0.0.1") == lockout.ADDRESS_THRESHOLD
    assert lockout.threshold_for("user:sato") == lockout.USER_THRESHOLD


def test_codes_read_forgivingly() -> None:
    assert normalise(" abcd-efgh ") == "ABCDEFGH"
    assert normalise("o1il") == "0111"
    assert display("ABCDEFGH") == "ABCD-EFGH"


@pytest.mark.parametrize(
    ("header", "cookie", "lang"),
    [
        (None, None, "ja"),
        ("en-US,en;q=0.9", None, "en"),
        ("ja,en;q=0.5", None, "ja"),
        ("fr, en;q=0.3, ja;q=0.8", None, "ja"),
        ("en", "ja", "ja"),
        ("de", None, "ja"),
        ("en;q=abc", None, "ja"),
    ],
)
def test_language_from_the_switch_then_accept_language_then_japanese(
    header: str | None, cookie: str | None, lang: str
) -> None:
    assert negotiate(header, cookie) == lang


def test_every_ui_text_exists_in_both_languages() -> None:
    assert all(ja and en for ja, en in MESSAGES.values())
    assert translator("en")("signin") == "Sign in" and translator("ja")("signin") == "サインイン"

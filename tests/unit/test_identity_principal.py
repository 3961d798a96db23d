import pytest

from voice_server.identity.principal import DirectoryRefusal, UserRecord, effective_principal
from voice_server.identity.tokens import Audience, Claims, Role


def _claims(role: Role = Role.STAFF, channels: tuple[str, ...] = ("ops",)) -> Claims:
    return Claims("u", "U", role, channels, Audience.JOIN, 100, 0, "j")


def test_without_a_directory_record_the_token_is_the_principal() -> None:
    p = effective_principal(_claims(channels=("ops", "hq")), None)
    assert p.may_join("ops") and p.may_join("hq") and not p.may_join("x")


def test_wildcard_token_covers_every_channel() -> None:
    assert effective_principal(_claims(channels=("*",)), None).may_join("anything")


def test_token_can_only_narrow_the_directory_role() -> None:
    rec = UserRecord("u", True, Role.STAFF, ("*",))
    assert effective_principal(_claims(role=Role.ADMIN), rec).role is Role.STAFF
    rec = UserRecord("u", True, Role.ADMIN, ("*",))
    assert effective_principal(_claims(role=Role.STAFF), rec).role is Role.STAFF


def test_token_channels_are_intersected_with_the_directory() -> None:
    rec = UserRecord("u", True, Role.STAFF, ("ops",))
    p = effective_principal(_claims(channels=("ops", "hq")), rec)
    assert p.may_join("ops") and not p.may_join("hq")
    p = effective_principal(_claims(channels=("*",)), rec)
    assert p.may_join("ops") and not p.may_join("hq")


def test_disabled_user_is_refused_whatever_the_token_says() -> None:
    with pytest.raises(DirectoryRefusal):
        effective_principal(_claims(), UserRecord("u", False, Role.ADMIN, ("*",)))

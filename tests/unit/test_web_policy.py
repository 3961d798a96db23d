"""Every cell of the access table (docs/security.md) as the pure policy decides it."""

import pytest

from voice_server.identity.principal import UserRecord
from voice_server.identity.tokens import Audience, Claims, Role
from voice_server.web.policy import (
    ADMIN_ACTIONS,
    CALL_LOG_ACTIONS,
    Action,
    Actor,
    TargetUser,
    actor_from_record,
    actor_from_token,
    channels_for,
    decide,
    may_any,
)


def actor(role: Role, member: tuple[str, ...] = (), supervises: tuple[str, ...] = ()) -> Actor:
    return actor_from_record(
        UserRecord(role.value, True, role, member + supervises, None, supervises)
    )


STAFF = actor(Role.STAFF, member=("ops",))
SUPERVISOR = actor(Role.SUPERVISOR, supervises=("ops",))
ADMIN = actor(Role.ADMIN)
ADMIN_ASSIGNED = actor(Role.ADMIN, supervises=("ops",))
ADMIN_MEMBER = actor(Role.ADMIN, member=("ops",))
STAFF_TARGET = TargetUser("sato", Role.STAFF, True, frozenset({"ops"}))


@pytest.mark.parametrize(
    ("who", "channel", "allowed"),
    [
        (STAFF, "ops", True),
        (STAFF, "hq", False),
        (SUPERVISOR, "ops", True),
        (SUPERVISOR, "hq", False),
        (ADMIN, "ops", False),
        (ADMIN_ASSIGNED, "ops", True),
        (ADMIN_MEMBER, "ops", True),
        (None, "ops", False),
    ],
)
def test_join_needs_membership_or_supervision(
    who: Actor | None, channel: str, allowed: bool
) -> None:
    assert bool(decide(who, Action.JOIN, channel=channel)) is allowed


@pytest.mark.parametrize("action", sorted(CALL_LOG_ACTIONS))
@pytest.mark.parametrize(
    ("who", "channel", "allowed"),
    [
        (STAFF, "ops", False),  # staff: nothing of the call log, even their own channel
        (SUPERVISOR, "ops", True),
        (SUPERVISOR, "hq", False),
        (ADMIN, "ops", False),  # an admin reads only channels they are also assigned to
        (ADMIN_ASSIGNED, "ops", True),
        (ADMIN_MEMBER, "ops", False),  # membership (talking) is not supervision
        (None, "ops", False),
        (SUPERVISOR, None, False),
    ],
)
def test_call_log_only_for_supervisors_of_the_channel(
    action: Action, who: Actor | None, channel: str | None, allowed: bool
) -> None:
    assert bool(decide(who, action, channel=channel)) is allowed


@pytest.mark.parametrize("action", sorted(ADMIN_ACTIONS))
def test_administration_is_for_admins_only(action: Action) -> None:
    assert decide(ADMIN, action)
    for who in (STAFF, SUPERVISOR, None):
        assert not decide(who, action)


def test_the_dashboard_is_for_supervisors_and_admins() -> None:
    assert decide(SUPERVISOR, Action.DASHBOARD) and decide(ADMIN, Action.DASHBOARD)
    assert not decide(STAFF, Action.DASHBOARD) and not decide(None, Action.DASHBOARD)


def test_sign_in_codes_for_staff_of_supervised_channels_or_by_admins() -> None:
    other = TargetUser("x", Role.STAFF, True, frozenset({"hq"}))
    boss = TargetUser("y", Role.SUPERVISOR, True, frozenset({"ops"}))
    gone = TargetUser("z", Role.STAFF, False, frozenset({"ops"}))
    assert decide(SUPERVISOR, Action.SIGNIN_CODE_CREATE, target=STAFF_TARGET)
    assert not decide(SUPERVISOR, Action.SIGNIN_CODE_CREATE, target=other)
    assert decide(ADMIN, Action.SIGNIN_CODE_CREATE, target=other)
    for target in (boss, gone, None):
        assert not decide(ADMIN, Action.SIGNIN_CODE_CREATE, target=target)
    assert not decide(STAFF, Action.SIGNIN_CODE_CREATE, target=STAFF_TARGET)


def claims(role: Role, *channels: str) -> Claims:
    return Claims("boss", "Boss", role, channels, Audience.API, 2, 1, "j")


def test_an_api_token_only_narrows_the_directory() -> None:
    record = UserRecord("boss", True, Role.SUPERVISOR, ("ops", "hq"), "上司", ("ops", "hq"))
    wide = actor_from_token(claims(Role.ADMIN, "*"), record)
    assert wide.role is Role.SUPERVISOR and wide.name == "上司"
    assert decide(wide, Action.SEARCH, channel="hq") and not decide(wide, Action.USERS_VIEW)
    narrow = actor_from_token(claims(Role.STAFF, "ops"), record)
    assert decide(narrow, Action.JOIN, channel="ops") and not decide(
        narrow, Action.JOIN, channel="hq"
    )
    assert not decide(narrow, Action.SEARCH, channel="ops")


def test_without_accounts_the_token_alone_is_the_actor() -> None:
    sup = actor_from_token(claims(Role.SUPERVISOR, "ops"), None)
    assert decide(sup, Action.VIEW, channel="ops") and not decide(sup, Action.VIEW, channel="hq")
    staff = actor_from_token(claims(Role.STAFF, "*"), None)
    assert decide(staff, Action.JOIN, channel="any") and not decide(
        staff, Action.VIEW, channel="any"
    )


def test_channels_for_lists_what_a_search_without_filter_covers() -> None:
    known = ["front", "hq", "ops"]
    assert channels_for(SUPERVISOR, Action.SEARCH, known) == ["ops"]
    assert channels_for(ADMIN, Action.SEARCH, known) == []
    assert channels_for(STAFF, Action.SEARCH, known) == []


def test_anything_unlisted_is_denied() -> None:
    assert all(not decide(None, a) for a in Action)


def test_the_navigation_shows_call_log_entries_to_whoever_supervises_a_channel() -> None:
    sup, idle_sup = actor(Role.SUPERVISOR, supervises=("ops",)), actor(Role.SUPERVISOR)
    admin, staff = actor(Role.ADMIN), actor(Role.STAFF, member=("ops",))
    for action in (Action.SEARCH, Action.LIVE):
        assert may_any(sup, action) and not may_any(idle_sup, action)
        assert not may_any(admin, action) and not may_any(staff, action)
        assert not may_any(None, action)
    assert may_any(admin, Action.USERS_VIEW) and not may_any(sup, Action.USERS_VIEW)

from voice_server.identity.principal import Principal
from voice_server.identity.tokens import Role
from voice_server.ratelimit import TokenBucket
from voice_server.signaling.sessions import SessionRegistry, SessionState


def _p(sub: str = "u1") -> Principal:
    return Principal(sub, sub.upper(), Role.STAFF, frozenset({"ops", "hq"}), False, 10_000)


def test_new_join_of_same_user_and_device_replaces_the_old_session() -> None:
    reg = SessionRegistry(10)
    first = reg.open(_p(), "d", "ops", 0).session
    second = reg.open(_p(), "d", "ops", 1)
    assert second.replaced is first and first.state is SessionState.CLOSED
    assert reg.in_channel("ops") == [second.session] and len(reg) == 1


def test_same_user_on_another_device_is_a_second_participant() -> None:
    reg = SessionRegistry(10)
    reg.open(_p(), "phone", "ops", 0)
    reg.open(_p(), "headset", "ops", 0)
    assert len(reg.in_channel("ops")) == 2


def test_detached_session_is_resumed_within_the_grace_period() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p(), "d", "ops", 0).session
    reg.detach(s, 1)
    assert reg.expired(10.5) == []
    again = reg.open(_p(), "d", "ops", 10.5, resume_id=s.id)
    assert again.resumed and again.session is s and s.state is SessionState.ATTACHED


def test_detached_session_expires_after_the_grace_period() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p(), "d", "ops", 0).session
    reg.detach(s, 1)
    assert reg.expired(11) == [s]


def test_resume_with_an_unknown_id_starts_a_fresh_session() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p(), "d", "ops", 0).session
    again = reg.open(_p(), "d", "ops", 1, resume_id="nope")
    assert not again.resumed and again.replaced is s


def test_resume_into_another_channel_replaces_instead() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p(), "d", "ops", 0).session
    again = reg.open(_p(), "d", "hq", 1, resume_id=s.id)
    assert not again.resumed and reg.in_channel("ops") == [] and reg.channels() == ["hq"]


def test_another_user_cannot_resume_someone_elses_session() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p("u1"), "d", "ops", 0).session
    other = reg.open(_p("u2"), "d", "ops", 1, resume_id=s.id)
    assert not other.resumed and other.session is not s and s.state is SessionState.ATTACHED


def test_closing_twice_is_harmless() -> None:
    reg = SessionRegistry(10)
    s = reg.open(_p(), "d", "ops", 0).session
    assert reg.close(s) and not reg.close(s) and len(reg) == 0


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=50, now=0)
    assert sum(bucket.allow(0) for _ in range(100)) == 50
    assert sum(bucket.allow(1.0) for _ in range(100)) == 20

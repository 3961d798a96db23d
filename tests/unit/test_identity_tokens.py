import base64
import json

import jwt
import pytest

from voice_server.identity.tokens import Audience, Role, TokenError, issue_token, verify_token

KEY = b"k" * 32
NOW = 1_800_000_000


def _issue(**kw: object) -> str:
    args: dict[str, object] = {"sub": "u1", "name": "佐藤", "channels": ["ops"], "now": NOW}
    args.update(kw)
    return issue_token(KEY, **args)  # type: ignore[arg-type]


def test_token_round_trips_all_claims() -> None:
    claims = verify_token(KEY, _issue(role=Role.SUPERVISOR), audience=Audience.JOIN, now=NOW + 1)
    assert (claims.sub, claims.name, claims.role, claims.channels) == (
        "u1",
        "佐藤",
        Role.SUPERVISOR,
        ("ops",),
    )
    assert claims.aud is Audience.JOIN and claims.exp == NOW + 36000 and claims.jti


def test_each_token_has_a_unique_jti() -> None:
    a = verify_token(KEY, _issue(), audience=Audience.JOIN, now=NOW)
    b = verify_token(KEY, _issue(), audience=Audience.JOIN, now=NOW)
    assert a.jti != b.jti


def _reason(token: str, *, aud: Audience = Audience.JOIN, now: int = NOW, key: bytes = KEY) -> str:
    with pytest.raises(TokenError) as info:
        verify_token(key, token, audience=aud, now=now)
    return info.value.reason


def test_expired_token_is_refused() -> None:
    assert _reason(_issue(ttl_seconds=60), now=NOW + 120) == "expired"


def test_a_token_minted_by_a_node_whose_clock_runs_ahead_is_taken_within_5_minutes() -> None:
    token = _issue()  # iat NOW, on a node 4 min ahead of this one
    assert verify_token(KEY, token, audience=Audience.JOIN, now=NOW - 240).sub == "u1"
    assert _reason(token, now=NOW - 301) == "invalid"  # not valid yet: further apart than that


def test_token_of_the_wrong_audience_is_refused() -> None:
    assert _reason(_issue(aud=Audience.API)) == "audience"


def test_token_signed_with_another_key_is_refused() -> None:
    assert _reason(_issue(), key=b"x" * 32) == "invalid"


def test_unsigned_alg_none_token_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    good = _issue().split(".")[1]
    assert _reason(f"{header}.{good}.") == "invalid"


def test_tampered_payload_is_refused() -> None:
    head, body, sig = _issue().split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert _reason(f"{head}.{forged}.{sig}") == "invalid"


def test_garbage_is_refused_as_invalid() -> None:
    assert _reason("not-a-token") == "invalid"


def test_token_with_wrongly_typed_claims_is_refused() -> None:
    bad = jwt.encode(
        {
            "iss": "voice-server",
            "sub": 5,
            "aud": "join",
            "exp": NOW + 5,
            "iat": NOW,
            "jti": "j",
            "channels": "ops",
        },
        KEY,
        algorithm="HS256",
    )
    assert _reason(bad) == "invalid"


@pytest.mark.parametrize(
    "kw", [{"channels": []}, {"ttl_seconds": 0}, {"sub": ""}, {"name": "a\nb"}]
)
def test_issuing_refuses_out_of_range_input(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _issue(**kw)

"""The demo organisation of ``make run``: channels and real accounts to try at once.

Demo passwords are derived from the deployment key (HMAC), so they stay the same across
restarts of one data directory, differ between data directories, and can be printed at every
start without being stored anywhere. A password changed later (dashboard, ``users passwd``) is
kept: the printed one is then stale.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.accounts.users import Assignment
from voice_server.identity.tokens import Audience, Role, issue_token

DEMO_CHANNELS = [
    ("shelter-a", "避難所A"),
    ("facilities", "施設管理"),
    ("front-desk", "窓口"),
]


@dataclass(frozen=True)
class DemoUser:
    name: str
    display_name: str
    role: Role
    member_of: tuple[str, ...]
    supervises: tuple[str, ...]
    device: str


DEMO_USERS = [
    DemoUser("sato", "佐藤 (Sato)", Role.STAFF, ("shelter-a", "facilities"), (), "phone-1"),
    DemoUser("suzuki", "鈴木 (Suzuki)", Role.STAFF, ("shelter-a", "facilities"), (), "phone-2"),
    DemoUser(
        "tanaka",
        "田中 (Tanaka)",
        Role.SUPERVISOR,
        (),
        ("shelter-a", "facilities", "front-desk"),
        "tablet-1",
    ),
    DemoUser("yamada", "山田 (Yamada)", Role.ADMIN, (), (), "pc-1"),
]
_DEMO = Caller("demo", "system", "local")


def demo_password(key: bytes, name: str) -> str:
    digest = hmac.new(key, f"demo-password:{name}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:12].lower()


def ensure_demo_organisation(accounts: Accounts, key: bytes) -> None:
    """Create the demo channels, users and assignments that are missing (idempotent)."""
    svc = accounts.service
    existing = {c.name for c in svc.channels.list()}
    for name, display in DEMO_CHANNELS:
        if name not in existing:
            svc.add_channel(_DEMO, name, display_name=display)
    for user in DEMO_USERS:
        current = accounts.users.get(user.name)
        if current is None:
            svc.add_user(
                _DEMO,
                user.name,
                user.role.value,
                display_name=user.display_name,
                password=demo_password(key, user.name),
            )
            current = accounts.users.get(user.name)
        assert current is not None
        for channel in user.member_of:
            if channel not in current.member_of:
                svc.assign(_DEMO, channel, user.name, Assignment.MEMBER)
        for channel in user.supervises:
            if channel not in current.supervises:
                svc.assign(_DEMO, channel, user.name, Assignment.SUPERVISOR)


def demo_credentials(key: bytes, base_url: str, ttl_seconds: int = 36000) -> list[str]:
    """Lines to print: sign-in pages, each demo user's password, and for the users who talk a
    join token and a device link (token in the fragment)."""
    now = int(time.time())
    lines = [
        f"  sign in: {base_url}/signin    dashboard: {base_url}/dashboard"
        f"    call log: {base_url}/dashboard/search"
    ]
    for user in DEMO_USERS:
        channels = user.member_of + user.supervises
        lines.append(
            f"  {user.display_name} [{user.role.value}] name={user.name} "
            f"password={demo_password(key, user.name)} channels={','.join(channels) or '-'}"
        )
        if not channels:
            continue
        token = issue_token(
            key,
            sub=user.name,
            name=user.display_name,
            channels=channels,
            role=user.role,
            aud=Audience.JOIN,
            ttl_seconds=ttl_seconds,
            now=now,
        )
        lines.append(f"    token: {token}")
        lines.append(f"    device link: {base_url}/#channel={channels[0]}&token={token}&autojoin=1")
    return lines

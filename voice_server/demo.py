"""The demo organisation of ``make run``: channels and users to try at once.

There are no accounts yet, so demo users are tokens printed at start-up; the dashboard issue
replaces them with real accounts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from voice_server.identity.tokens import Audience, Role, issue_token
from voice_server.store.channels import ChannelStore

DEMO_CHANNELS = [
    ("shelter-a", "避難所A"),
    ("facilities", "施設管理"),
    ("front-desk", "窓口"),
]


@dataclass(frozen=True)
class DemoUser:
    sub: str
    name: str
    role: Role
    channels: tuple[str, ...]
    device: str


DEMO_USERS = [
    DemoUser("demo-sato", "佐藤 (Sato)", Role.STAFF, ("shelter-a", "facilities"), "phone-1"),
    DemoUser("demo-suzuki", "鈴木 (Suzuki)", Role.STAFF, ("shelter-a", "facilities"), "phone-2"),
    DemoUser("demo-tanaka", "田中 (Tanaka)", Role.SUPERVISOR, ("*",), "tablet-1"),
]


def ensure_demo_channels(store: ChannelStore) -> None:
    existing = {c.name for c in store.list()}
    for name, display in DEMO_CHANNELS:
        if name not in existing:
            store.add(name, display)


def demo_credentials(key: bytes, base_url: str, ttl_seconds: int = 36000) -> list[str]:
    """Lines to print: each demo user's token and a device link (token in the fragment)."""
    now = int(time.time())
    lines = []
    for user in DEMO_USERS:
        token = issue_token(
            key,
            sub=user.sub,
            name=user.name,
            channels=user.channels,
            role=user.role,
            aud=Audience.JOIN,
            ttl_seconds=ttl_seconds,
            now=now,
        )
        channel = DEMO_CHANNELS[0][0]
        lines.append(f"  {user.name} [{user.role.value}] channels={','.join(user.channels)}")
        lines.append(f"    token: {token}")
        lines.append(f"    device link: {base_url}/#channel={channel}&token={token}&autojoin=1")
    return lines

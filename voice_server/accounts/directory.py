"""The database-backed :class:`~voice_server.identity.principal.UserDirectory`.

Modes (decided by the data, not by a setting):
- **token-only**: the users table is empty (a fresh deployment, the integration tests): every
  correctly signed token is its own principal, as before accounts existed.
- **accounts**: from the first account on (accounts are disabled, never deleted, so there is no
  way back): a token's subject must be an enabled account; the token only narrows its role and
  channels. A subject without an account is refused (``user_unknown``).
"""

from __future__ import annotations

from voice_server.accounts.users import UserStore
from voice_server.identity.principal import DirectoryRefusal, UserRecord


class DatabaseDirectory:
    def __init__(self, users: UserStore) -> None:
        self._users = users
        self._accounts_seen = False  # monotone: once there are accounts there always are

    def accounts_mode(self) -> bool:
        if not self._accounts_seen:
            self._accounts_seen = self._users.any()
        return self._accounts_seen

    def lookup(self, sub: str) -> UserRecord | None:
        if not self.accounts_mode():
            return None
        user = self._users.get(sub)
        if user is None:
            raise DirectoryRefusal("unknown", "no account for this user")
        return UserRecord(
            sub=user.name,
            enabled=user.enabled,
            role=user.role,
            channels=user.joinable,
            display_name=user.display_name,
            supervised=user.supervises,
        )

    def revision(self) -> int:
        return self._users.revision()

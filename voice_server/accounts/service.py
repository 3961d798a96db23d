"""Admin changes to users, channels and assignments: validated, applied and audited together.

Every method runs one transaction holding both the change and its audit entry, so N changes give
exactly N audit rows. Callers check permission first (``web.policy`` for the web and API; the
command line is trusted: it runs as someone who can read the data directory). Self-protection:
nobody can disable themself, and the last enabled admin cannot be disabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voice_server.accounts import validate
from voice_server.accounts.passwords import hash_password
from voice_server.accounts.users import Assignment, User, UserStore
from voice_server.accounts.websessions import WebSessions
from voice_server.audit.log import AuditLog
from voice_server.identity.tokens import Role
from voice_server.store.channels import Channel, ChannelError, ChannelStore, validate_retention
from voice_server.store.database import Database
from voice_server.talk import priority as talk_priority


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for a change: ``sub`` and role as recorded in the audit log, and from where."""

    sub: str
    role_name: str
    address: str = ""


class AccountService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self.users = UserStore(db)
        self.channels = ChannelStore(db)
        self.audit = audit

    def _record(self, conn: Any, by: Caller, action: str, target: str, **details: Any) -> None:
        self.audit.record(by, action, target, details, address=by.address, conn=conn)

    # ------------------------------------------------------------------ users
    def add_user(
        self,
        by: Caller,
        name: str,
        role: str,
        *,
        display_name: str | None = None,
        password: str | None = None,
        channels: Iterable[str] = (),
    ) -> User:
        name = validate.user_name(name)
        the_role = validate.role(role)
        display = validate.display_name(display_name if display_name else name)
        hashed = hash_password(validate.password(password)) if password is not None else None
        chans = sorted(set(channels))
        with self._db.transaction() as conn:
            self.users.insert(conn, name, display, the_role, hashed)
            for channel in chans:
                self._require_channel(conn, channel)
                self.users.assign(conn, channel, name, Assignment.MEMBER)
            self._record(
                conn,
                by,
                "user.add",
                f"user:{name}",
                role=the_role.value,
                display_name=display,
                channels=chans,
                password_set=hashed is not None,
            )
            return self.users.require(conn, name)

    def set_enabled(self, by: Caller, name: str, enabled: bool) -> User:
        with self._db.transaction() as conn:
            user = self.users.require(conn, name)
            if not enabled:
                if user.name == by.sub:
                    raise validate.AccountError("you cannot disable yourself", "conflict")
                if (
                    user.role is Role.ADMIN
                    and user.enabled
                    and self.users.enabled_admins(conn) <= 1
                ):
                    raise validate.AccountError(
                        "the last enabled admin cannot be disabled", "conflict"
                    )
                WebSessions.revoke_user(conn, name)
            self.users.set_enabled(conn, name, enabled)
            self._record(conn, by, "user.enable" if enabled else "user.disable", f"user:{name}")
            return self.users.require(conn, name)

    def set_password(self, by: Caller, name: str, password: str) -> None:
        hashed = hash_password(validate.password(password))
        with self._db.transaction() as conn:
            self.users.require(conn, name)
            self.users.set_password_hash(conn, name, hashed)
            WebSessions.revoke_user(conn, name)
            self._record(conn, by, "user.password", f"user:{name}")

    def rehash(self, name: str, password: str) -> None:
        """Store a fresh hash after a sign-in with an outdated one (not an admin change)."""
        hashed = hash_password(password)
        with self._db.transaction() as conn:
            self.users.set_password_hash(conn, name, hashed)

    # ------------------------------------------------------------------ channels
    def _require_channel(self, conn: Any, name: str) -> Channel:
        channel = self.channels.get(name, conn)
        if channel is None:
            raise validate.AccountError(f"no channel named {name!r}", "not_found")
        return channel

    def add_channel(
        self,
        by: Caller,
        name: str,
        *,
        display_name: str | None = None,
        supervisors: Iterable[str] = (),
        members: Iterable[str] = (),
    ) -> Channel:
        with self._db.transaction() as conn:
            channel = self.channels.add(name, display_name, conn)
            sups, mems = sorted(set(supervisors)), sorted(set(members))
            for user in sups:
                self._assign(conn, channel.name, user, Assignment.SUPERVISOR)
            for user in mems:
                self._assign(conn, channel.name, user, Assignment.MEMBER)
            self._record(
                conn,
                by,
                "channel.add",
                f"channel:{channel.name}",
                display_name=channel.display_name,
                supervisors=sups,
                members=mems,
            )
            return channel

    def update_channel(
        self,
        by: Caller,
        name: str,
        *,
        display_name: str | None = None,
        retention_days: int | str | None = "keep",
        legal_hold: bool | None = None,
    ) -> Channel:
        """Change what is given (``retention_days="keep"`` leaves it; None means for ever)."""
        with self._db.transaction() as conn:
            old = self._require_channel(conn, name)
            new_display = old.display_name if display_name is None else display_name
            new_retention = (
                old.retention_days
                if isinstance(retention_days, str)
                else validate_retention(retention_days)
            )
            new_hold = old.legal_hold if legal_hold is None else legal_hold
            self.channels.update(
                conn,
                name,
                display_name=new_display,
                retention_days=new_retention,
                legal_hold=new_hold,
            )
            new = self._require_channel(conn, name)
            changes = {
                key: [getattr(old, key), getattr(new, key)]
                for key in ("display_name", "retention_days", "legal_hold")
                if getattr(old, key) != getattr(new, key)
            }
            self._record(conn, by, "channel.update", f"channel:{name}", changes=changes)
            return new

    def set_talk_rules(
        self,
        by: Caller,
        name: str,
        *,
        priority: Mapping[str, int] | None = None,
        listeners: Mapping[str, bool] | None = None,
        duck_db: int | None = None,
    ) -> Channel:
        """Per-member levels (1-2; level 1 removes the override), talk rights (True: listen
        only) and the duck level of a channel (its settings: ``talk.priority``). Every user
        named must be a member or supervisor of the channel."""
        with self._db.transaction() as conn:
            old = self._require_channel(conn, name)
            settings = dict(old.settings)
            levels = {u: int(v) for u, v in talk_priority.overrides(settings).items()}
            heard = set(talk_priority.listeners(settings))
            changes: dict[str, Any] = {}
            for raw, level in (priority or {}).items():
                user = self._require_member(conn, name, raw)
                try:
                    talk_priority.validate_override(level)
                except ValueError as exc:
                    raise validate.AccountError(f"{user}: {exc}") from None
                if level == talk_priority.Level.ROUTINE:
                    levels.pop(user, None)
                else:
                    levels[user] = int(level)
                changes.setdefault("priority", {})[user] = int(level)
            for raw, listen in (listeners or {}).items():
                user = self._require_member(conn, name, raw)
                (heard.add if listen else heard.discard)(user)
                changes.setdefault("talk_right", {})[user] = "listener" if listen else "talker"
            if duck_db is not None:
                try:
                    settings["duck_db"] = talk_priority.validate_duck_db(duck_db)
                except ValueError as exc:
                    raise validate.AccountError(str(exc)) from None
                changes["duck_db"] = duck_db
            settings["priority"] = dict(sorted(levels.items()))
            settings["listeners"] = sorted(heard)
            self.channels.set_settings(conn, name, settings)
            # live sessions pick the change up like any directory change (within ~1 s)
            conn.execute("UPDATE directory_revision SET n = n + 1")
            self._record(conn, by, "channel.talk_rules", f"channel:{name}", changes=changes)
            return self._require_channel(conn, name)

    def _require_member(self, conn: Any, channel: str, user_name: str) -> str:
        user = self.users.require(conn, validate.user_name(user_name))
        if channel not in user.member_of and channel not in user.supervises:
            raise validate.AccountError(f"{user.name} is not a member of channel {channel!r}")
        return user.name

    def remove_channel(self, by: Caller, name: str) -> None:
        with self._db.transaction() as conn:
            self._require_channel(conn, name)
            conn.execute("DELETE FROM channel WHERE name = ?", (name,))
            self._record(conn, by, "channel.remove", f"channel:{name}")

    def _assign(self, conn: Any, channel: str, user_name: str, kind: Assignment) -> bool:
        user = self.users.require(conn, validate.user_name(user_name))
        if kind is Assignment.SUPERVISOR and user.role is Role.STAFF:
            raise validate.AccountError(
                f"{user.name} is staff: only supervisors and admins can supervise a channel"
            )
        return self.users.assign(conn, channel, user.name, kind)

    def assign(self, by: Caller, channel: str, user_name: str, kind: Assignment) -> bool:
        with self._db.transaction() as conn:
            self._require_channel(conn, channel)
            added = self._assign(conn, channel, user_name, kind)
            self._record(
                conn,
                by,
                "channel.assign",
                f"channel:{channel}",
                user=validate.user_name(user_name),
                kind=kind.value,
                changed=added,
            )
            return added

    def unassign(self, by: Caller, channel: str, user_name: str, kind: Assignment) -> bool:
        with self._db.transaction() as conn:
            self._require_channel(conn, channel)
            user = self.users.require(conn, validate.user_name(user_name))
            removed = self.users.unassign(conn, channel, user.name, kind)
            self._record(
                conn,
                by,
                "channel.unassign",
                f"channel:{channel}",
                user=user.name,
                kind=kind.value,
                changed=removed,
            )
            return removed


__all__ = ["AccountService", "Caller", "ChannelError"]

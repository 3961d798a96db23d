"""Everything about accounts one process holds, opened on one database."""

from __future__ import annotations

from dataclasses import dataclass

from voice_server.accounts.codes import SigninCodes
from voice_server.accounts.directory import DatabaseDirectory
from voice_server.accounts.service import AccountService
from voice_server.accounts.throttle import LoginThrottle
from voice_server.accounts.users import UserStore
from voice_server.accounts.websessions import WebSessions
from voice_server.audit.log import AuditLog
from voice_server.store.database import Database


@dataclass(frozen=True, slots=True)
class Accounts:
    service: AccountService
    users: UserStore
    directory: DatabaseDirectory
    sessions: WebSessions
    codes: SigninCodes
    throttle: LoginThrottle
    audit: AuditLog

    @classmethod
    def open(cls, db: Database) -> Accounts:
        audit = AuditLog(db)
        service = AccountService(db, audit)
        return cls(
            service=service,
            users=service.users,
            directory=DatabaseDirectory(service.users),
            sessions=WebSessions(db),
            codes=SigninCodes(db),
            throttle=LoginThrottle(db),
            audit=audit,
        )

"""The administration commands of ``voice-server``: ``users``, ``channels`` and ``audit``.

Changes made here are audited like the dashboard's, with the actor ``cli:<login name>``.
Passwords come from a prompt (typed twice) or one line of standard input
(``--password-stdin``), never from an argument.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.accounts.users import Assignment
from voice_server.accounts.validate import AccountError
from voice_server.audit.export import AUDIT_COLUMNS, csv_document, json_document
from voice_server.backends.seam import open_database
from voice_server.config import Config
from voice_server.identity.tokens import Role
from voice_server.talk.priority import duck_db, listeners, overrides

AddState = Callable[[argparse.ArgumentParser], None]


class ChainBroken(Exception):
    """``audit verify`` found tampering (exit 1)."""


def add_parsers(sub: Any, parser_class: type[argparse.ArgumentParser], state: AddState) -> None:
    users = sub.add_parser("users", help="manage user accounts")
    usub = users.add_subparsers(dest="action", required=True, parser_class=parser_class)
    add = usub.add_parser("add", help="add a user (password from a prompt or --password-stdin)")
    state(add)
    add.add_argument("name", help="sign-in name (lower-case slug; the token sub)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name", help="name shown to people (Japanese allowed)")
    add.add_argument("--channel", action="append", default=[], help="member of (repeat)")
    _password_args(add, allow_none=True)
    lst = usub.add_parser("list", help="list users")
    state(lst)
    lst.add_argument("--json", action="store_true", help="print JSON")
    for action, text in (("disable", "disable (ends live sessions)"), ("enable", "enable")):
        p = usub.add_parser(action, help=f"{text} a user")
        state(p)
        p.add_argument("name")
    pw = usub.add_parser("passwd", help="set a user's password")
    state(pw)
    pw.add_argument("name")
    _password_args(pw, allow_none=False)

    channels = sub.add_parser("channels", help="manage channels")
    csub = channels.add_subparsers(dest="action", required=True, parser_class=parser_class)
    cadd = csub.add_parser("add", help="add a channel")
    state(cadd)
    cadd.add_argument("name")
    cadd.add_argument("--display-name", help="name shown to people (Japanese allowed)")
    _assignment_args(cadd)
    clst = csub.add_parser("list", help="list channels")
    state(clst)
    clst.add_argument("--json", action="store_true", help="print JSON")
    rm = csub.add_parser("remove", help="remove a channel")
    state(rm)
    rm.add_argument("name")
    for action in ("assign", "unassign"):
        p = csub.add_parser(action, help=f"{action} supervisors or members")
        state(p)
        p.add_argument("name")
        _assignment_args(p)
    cset = csub.add_parser("set", help="change display name, retention or legal hold")
    state(cset)
    cset.add_argument("name")
    cset.add_argument("--display-name")
    cset.add_argument("--retention-days", help="days to keep the call log, or 'none'")
    cset.add_argument("--legal-hold", choices=["on", "off"])
    cset.add_argument(
        "--priority",
        action="append",
        default=[],
        metavar="USER=LEVEL",
        help="a member's talk priority in this channel: 1 (staff) or 2 (supervisor) (repeat)",
    )
    cset.add_argument("--duck-db", type=int, help="how far listeners duck other talkers (-40..0)")

    audit = sub.add_parser("audit", help="the audit log")
    asub = audit.add_subparsers(dest="action", required=True, parser_class=parser_class)
    ver = asub.add_parser("verify", help="check the hash chain")
    state(ver)
    exp = asub.add_parser("export", help="write the audit log as CSV or JSON")
    state(exp)
    exp.add_argument("--format", choices=["csv", "json"], default="csv")
    exp.add_argument("--output", type=Path, help="file (default: standard output)")


def _password_args(p: argparse.ArgumentParser, *, allow_none: bool) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    if allow_none:
        group.add_argument(
            "--no-password", action="store_true", help="no password: sign in with codes only"
        )


def _assignment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supervisor", action="append", default=[], help="user (repeat)")
    p.add_argument("--member", action="append", default=[], help="user (repeat)")
    p.add_argument(
        "--listener",
        action="append",
        default=[],
        help="member who may only listen (repeat; unassign: may talk again)",
    )


def _read_password(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_password", False):
        return None
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccountError("no terminal to prompt for a password: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the passwords differ")
    return first


def cli_caller() -> Caller:
    """The actor of changes made from the command line: ``cli:<login name>``."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Caller(f"cli:{who}", "cli", "local")


def run(args: argparse.Namespace, config: Config) -> int:
    accounts = Accounts.open(open_database(config.database_url, config.data_dir))
    if args.command == "users":
        return _users(args, accounts)
    if args.command == "channels":
        return _channels(args, accounts)
    return _audit(args, accounts)


def _users(args: argparse.Namespace, accounts: Accounts) -> int:
    svc, by = accounts.service, cli_caller()
    if args.action == "add":
        user = svc.add_user(
            by,
            args.name,
            args.role,
            display_name=args.display_name,
            password=_read_password(args),
            channels=args.channel,
        )
        print(f"added {user.role.value} {user.name} ({user.display_name})")
    elif args.action == "list":
        users = accounts.users.all()
        if args.json:
            rows = [
                {
                    "name": u.name,
                    "display_name": u.display_name,
                    "role": u.role.value,
                    "enabled": u.enabled,
                    "member_of": list(u.member_of),
                    "supervises": list(u.supervises),
                }
                for u in users
            ]
            print(json.dumps(rows, ensure_ascii=False))
        for u in users if not args.json else []:
            state = "enabled" if u.enabled else "disabled"
            print(
                f"{u.name}\t{u.display_name}\t{u.role.value}\t{state}\t"
                f"member:{','.join(u.member_of) or '-'}\tsupervises:{','.join(u.supervises) or '-'}"
            )
    elif args.action in ("disable", "enable"):
        svc.set_enabled(by, args.name.strip().lower(), args.action == "enable")
        print(f"{args.action}d {args.name}")
    elif args.action == "passwd":
        password = _read_password(args)
        assert password is not None
        svc.set_password(by, args.name.strip().lower(), password)
        print(f"password set for {args.name}")
    return 0


def _channels(args: argparse.Namespace, accounts: Accounts) -> int:
    svc, by = accounts.service, cli_caller()
    if args.action == "add":
        ch = svc.add_channel(
            by,
            args.name,
            display_name=args.display_name,
            supervisors=args.supervisor,
            members=args.member,
        )
        print(f"added channel {ch.name} ({ch.display_name})")
    elif args.action == "list":
        _list_channels(accounts, args.json)
    elif args.action == "remove":
        svc.remove_channel(by, args.name)
        print(f"removed channel {args.name}")
    elif args.action in ("assign", "unassign"):
        if not args.supervisor and not args.member and not args.listener:
            raise AccountError("name at least one --supervisor, --member or --listener")
        change = svc.assign if args.action == "assign" else svc.unassign
        for kind, names in (
            (Assignment.SUPERVISOR, args.supervisor),
            (Assignment.MEMBER, args.member),
        ):
            for name in names:
                change(by, args.name, name, kind)
                print(f"{args.action}ed {name} as {kind.value} of {args.name}")
        if args.listener:
            listen = args.action == "assign"
            for name in args.listener if listen else ():
                svc.assign(by, args.name, name, Assignment.MEMBER)
            svc.set_talk_rules(by, args.name, listeners=dict.fromkeys(args.listener, listen))
            for name in args.listener:
                right = "listener (listen only)" if listen else "talker"
                print(f"{name} is a {right} in {args.name}")
    elif args.action == "set":
        retention: int | str | None = "keep"
        if args.retention_days is not None:
            text = args.retention_days.strip().lower()
            if text != "none" and not text.isdigit():
                raise AccountError("--retention-days takes a number of days or 'none'")
            retention = None if text == "none" else int(text)
        hold = None if args.legal_hold is None else args.legal_hold == "on"
        if args.priority or args.duck_db is not None:
            levels = dict(_user_level(text) for text in args.priority)
            ch = svc.set_talk_rules(by, args.name, priority=levels, duck_db=args.duck_db)
            print(f"channel {ch.name}: priority {_levels_text(ch.settings)}")
            if args.display_name is None and args.retention_days is None and hold is None:
                return 0
        ch = svc.update_channel(
            by, args.name, display_name=args.display_name, retention_days=retention, legal_hold=hold
        )
        print(
            f"channel {ch.name}: {ch.display_name}, retention {ch.retention_days or 'none'}, "
            f"legal hold {'on' if ch.legal_hold else 'off'}"
        )
    return 0


def _user_level(text: str) -> tuple[str, int]:
    user, sep, level = text.partition("=")
    if not sep or not user.strip() or not level.strip().isdigit():
        raise AccountError(f"--priority takes USER=LEVEL (level 1 or 2), not {text!r}")
    return user.strip(), int(level)


def _levels_text(settings: dict[str, Any]) -> str:
    levels = overrides(settings)
    text = ", ".join(f"{u}={int(v)}" for u, v in sorted(levels.items())) or "by role"
    return f"{text}; duck {duck_db(settings)} dB"


def _list_channels(accounts: Accounts, as_json: bool) -> None:
    items = accounts.service.channels.list()
    rows = []
    for c in items:
        assigned = accounts.users.assignments(c.name)
        rows.append(
            {
                "name": c.name,
                "display_name": c.display_name,
                "created_at": c.created_at,
                "retention_days": c.retention_days,
                "legal_hold": c.legal_hold,
                "supervisors": assigned[Assignment.SUPERVISOR],
                "members": assigned[Assignment.MEMBER],
                "priority": {u: int(v) for u, v in overrides(c.settings).items()},
                "listeners": sorted(listeners(c.settings)),
                "duck_db": duck_db(c.settings),
            }
        )
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        print(f"{r['name']}\t{r['display_name']}\t{r['created_at']}")


def _audit(args: argparse.Namespace, accounts: Accounts) -> int:
    if args.action == "verify":
        verdict = accounts.audit.verify()
        if not verdict.ok:
            raise ChainBroken(f"audit log is broken: {verdict.problem}")
        print(f"audit log intact: {verdict.rows} rows, last hash {verdict.last_hash}")
        return 0
    by = cli_caller()
    accounts.audit.record(by, "audit.export", "audit_log", {"format": args.format}, address="local")
    meta = {
        "exported_by": by.sub,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    rows = (e.as_dict() for e in accounts.audit.iter_all())
    body = (
        csv_document(meta, AUDIT_COLUMNS, rows)
        if args.format == "csv"
        else json_document(meta, "entries", rows)
    )
    if args.output is not None:
        args.output.write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    return 0

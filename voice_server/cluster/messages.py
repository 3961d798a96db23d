"""Inbox messages as stream entries, and the window that drops a message seen twice (pure).

An entry's fields: ``uid`` (the sender's random id of this message), ``kind``, ``from`` (the
sending node) and ``body`` (JSON). After Redis restarts, a reader reads its inbox from the start
again (the new server's stream ids may be lower than the last one it read); the window makes
that re-read harmless when the server kept its data."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InboxMessage", "SeenWindow"]


@dataclass(frozen=True, slots=True)
class InboxMessage:
    kind: str
    sender: str
    body: dict[str, Any] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    entry_id: str = ""  # the stream id it was read at ("" before it is sent)

    def fields(self) -> dict[str, str]:
        return {
            "uid": self.uid,
            "kind": self.kind,
            "from": self.sender,
            "body": json.dumps(self.body, separators=(",", ":"), ensure_ascii=False),
        }

    @classmethod
    def from_fields(cls, entry_id: str, fields: Mapping[str, str]) -> InboxMessage:
        """ValueError for an entry that is not one of ours."""
        try:
            body = json.loads(fields["body"])
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
            return cls(fields["kind"], fields["from"], body, fields["uid"], entry_id)
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed inbox entry {entry_id}: {exc}") from exc


class SeenWindow:
    """The last ``size`` uids (oldest forgotten first)."""

    __slots__ = ("_seen", "size")

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("size must be positive")
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, uid: str) -> bool:
        """True the first time ``uid`` is offered (within the window)."""
        if uid in self._seen:
            return False
        self._seen[uid] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

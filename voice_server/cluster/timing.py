"""How often a node reports and how long Redis believes it (pure).

Every expiry is measured by Redis (key TTLs, ``TIME`` inside scripts), never by a node's wall
clock, so clock skew between nodes changes nothing; a node's own intervals only need its
monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timing"]


@dataclass(frozen=True, slots=True)
class Timing:
    heartbeat_s: float = 1.0  # a node reports its load this often
    node_ttl_s: float = 5.0  # dead once its last report is older than this (Redis time)
    lease_s: float = 5.0  # a channel owner's lease; renewed every heartbeat
    reassert_s: float = 2.0  # channel → nodes entries are written again this often
    channel_entry_ttl_s: float = 6.0  # an entry not re-asserted for this long is gone
    session_ttl_s: float = 60.0  # a session placement record not refreshed for this long

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.node_ttl_s < 2 * self.heartbeat_s:
            raise ValueError("node_ttl_s must be at least two heartbeats")
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError("lease_s must be at least two heartbeats (renewals)")
        if self.channel_entry_ttl_s < 2 * self.reassert_s:
            raise ValueError("channel_entry_ttl_s must be at least two re-assertions")

    @classmethod
    def derived(cls, heartbeat_s: float, node_ttl_s: float) -> Timing:
        """Every interval from the two a deployment sets (``cluster_heartbeat_seconds``,
        ``cluster_node_ttl_seconds``): leases last a node TTL, channel entries are re-asserted
        every two heartbeats and last six, presence records three node TTLs."""
        return cls(
            heartbeat_s=heartbeat_s,
            node_ttl_s=node_ttl_s,
            lease_s=node_ttl_s,
            reassert_s=2 * heartbeat_s,
            channel_entry_ttl_s=6 * heartbeat_s,
            session_ttl_s=3 * node_ttl_s,
        )

    @staticmethod
    def ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

"""Which node the next connection goes to: after a ``migrate``, and after a node's death (pure).

The nodes the user configured (``--server`` first, then each ``--node``) are the only places the
client connects to: a server cannot send a headset anywhere else. A migrate naming one of them
goes there; one naming another address is not followed (the same node again, after the
back-off); one naming none (or a join refused with ``node_draining``) goes to the next
configured node, or the same one when there is no other.

Failover (:func:`failover_node`): when the connection to a node is lost, the first try goes back
to the same node only when its socket merely dropped (a resume there keeps the session); a node
that went silent (hung, or the path to it), a try that found nothing listening or whose
handshake failed or timed out, and a join refused with ``cluster_unavailable`` move on to the
next configured node, in turn, with the caller's back-off between tries. With one configured
node it is always the same one.
"""

from __future__ import annotations

from enum import Enum

from voice_client.signaling import websocket_url

__all__ = ["Lost", "failover_node", "next_node"]


class Lost(Enum):
    """Why the client is connecting again."""

    DROPPED = "dropped"  # the socket closed while joined (or a migrate already chose the node)
    SILENT = "silent"  # no message from the node for the silence limit although pinged
    REFUSED = "refused"  # a try found nothing listening (connection refused)
    FAILED = "failed"  # a try's connection or handshake failed or timed out
    UNAVAILABLE = "unavailable"  # the node refused the join with cluster_unavailable


def next_node(current: str, configured: list[str], url: str | None) -> tuple[str, bool]:
    """The signaling URL to connect to next, and whether ``url`` was refused (not configured).
    ``current`` and ``configured`` are signaling URLs; ``url`` a base URL from the server."""
    allowed = list(dict.fromkeys(configured))
    if url is not None:
        try:
            target = websocket_url(url)
        except ValueError:
            return current, True
        return (target, False) if target in allowed else (current, True)
    if current in allowed and len(allowed) > 1:
        return allowed[(allowed.index(current) + 1) % len(allowed)], False
    return current, False


def failover_node(current: str, configured: list[str], why: Lost) -> str:
    """The signaling URL of the next try after ``why`` happened on ``current``: the same node
    after a dropped socket (the first try goes back there), else the next configured one."""
    if why is Lost.DROPPED:
        return current
    return next_node(current, configured, None)[0]

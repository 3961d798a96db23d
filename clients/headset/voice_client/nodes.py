"""Which node the next connection goes to after a ``migrate`` (pure).

The nodes the user configured (``--server`` first, then each ``--node``) are the only places a
migrate may send the client: a server cannot send a headset anywhere else. A migrate naming one
of them goes there; one naming another address is not followed (the same node again, after the
back-off); one naming none (or a join refused with ``node_draining``) goes to the next
configured node, or the same one when there is no other.
"""

from __future__ import annotations

from voice_client.signaling import websocket_url

__all__ = ["next_node"]


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

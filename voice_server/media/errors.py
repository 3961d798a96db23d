"""The one exception type raised by the media packet parsers.

Every ``parse`` function of :mod:`voice_server.media` raises :class:`PacketError` (a
:class:`ValueError`) on malformed input and nothing else: the UDP endpoint catches this one type,
counts the drop and moves on.
"""

from __future__ import annotations

__all__ = ["PacketError"]


class PacketError(ValueError):
    """A datagram or packet does not follow its wire format."""

"""Channel names (ASCII slugs): what every layer checks a channel name against (pure).

The store creates channels with such names; the transcriber link, the spool's tags and the
signaling refuse anything else before it reaches a path or a query.
"""

from __future__ import annotations

import re

__all__ = ["CHANNEL_NAME_RE"]

CHANNEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

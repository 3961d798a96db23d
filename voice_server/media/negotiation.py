"""One peer connection's m-lines across renegotiations (pure).

The server's offer has the participant's microphone (mid 0) and then one *block* of slot m-lines
per channel heard: that channel's slots, each with its fixed SSRC. Hearing a channel for the first
time appends a block by renegotiation on the same peer connection (blocks are never removed: a
channel no longer heard keeps its m-lines, unused, and is heard again through them). Each
renegotiation offer has a ``revision``; an answer is applied only to the offer still out (an
older revision, or none out, is stale).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Block", "Negotiation", "mids", "slot_ssrcs"]

#: one block of slot m-lines: the channel and its slots' fixed SSRCs
Block = tuple[str, tuple[int, ...]]
SsrcsOf = Callable[[str], tuple[int, ...]]


def mids(blocks: tuple[Block, ...]) -> int:
    """m-lines of an offer: the microphone, then each block's slots."""
    return 1 + sum(len(ssrcs) for _, ssrcs in blocks)


def slot_ssrcs(blocks: tuple[Block, ...]) -> tuple[int, ...]:
    return tuple(ssrc for _, block in blocks for ssrc in block)


@dataclass(eq=False, slots=True)
class Negotiation:
    sdp_session: int  # the o= session id, kept across renegotiations
    blocks: tuple[Block, ...]  # as in the offer answered (or the first offer)
    pending: tuple[int, tuple[Block, ...]] | None = None  # a renegotiation offer out
    revision: int = 0
    restart: int | None = None  # the revision of an ICE restart offer not yet answered

    def heard(self, hears: Iterable[str], ssrcs_of: SsrcsOf) -> set[str]:
        """The channels of ``hears`` this peer connection can hear now: a block with the
        channel's current slot SSRCs was answered."""
        answered = set(self.blocks)
        return {c for c in hears if (c, ssrcs_of(c)) in answered}

    def propose(self, hears: Iterable[str], ssrcs_of: SsrcsOf) -> tuple[Block, ...] | None:
        """The blocks of a renegotiation offer that adds what ``hears`` lacks; None when the
        answered blocks (or those of the offer already out) have them all. Proposing makes it
        the offer out, with the next revision."""
        want = list(self.blocks)
        for channel in hears:
            block = (channel, ssrcs_of(channel))
            if block not in want:
                want.append(block)
        blocks = tuple(want)
        if blocks == (self.pending[1] if self.pending is not None else self.blocks):
            return None
        self.revision += 1
        self.pending = (self.revision, blocks)
        return blocks

    def restart_ice(self) -> tuple[Block, ...]:
        """The blocks of an ICE restart offer (those of the offer out, or the answered ones),
        with the next revision: it supersedes any offer out."""
        blocks = self.pending[1] if self.pending is not None else self.blocks
        self.revision += 1
        self.pending = (self.revision, blocks)
        self.restart = self.revision
        return blocks

    def expects(self, revision: int | None) -> tuple[Block, ...] | None:
        """The blocks an answer with ``revision`` (None: the latest) must match; None when it
        is stale (no offer out, or a superseded one)."""
        if self.pending is None or revision not in (None, self.pending[0]):
            return None
        return self.pending[1]

    def settle(self) -> None:
        """The answer to the offer out was applied."""
        if self.pending is not None:
            self.blocks, self.pending = self.pending[1], None
        self.restart = None

"""What a load test does: channels, who talks, when each participant joins, which worker runs it.

Pure module (no I/O): the plan is a frozen value the coordinator and the tests share.

Join order: first every channel's talkers (talker 0 of each channel, then talker 1 of each, …),
then the listeners round-robin over the channels, one every ``1 / join_rate`` seconds. A
listener therefore joins a channel where someone is already talking, so its join time (WebSocket
open → first audio received) measures the server, not the wait for a talker. Participants are
dealt to the worker processes round-robin in that order, so every worker has its share of
talkers and its joins spread over the whole join phase.

Talkers talk without a pause by default; with ``pause_seconds`` they talk ``talk_seconds``, fall
silent for ``pause_seconds`` (long enough for the server's 600 ms hangover to end the burst) and
start again, each talker offset so that bursts start and end all the time (what the call log's
spool and transcriber see).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadPlan", "ParticipantSpec"]

MAX_PARTICIPANTS = 20_000


@dataclass(frozen=True, slots=True)
class ParticipantSpec:
    index: int  # position in the join order
    channel: str
    channel_index: int
    talker: bool
    join_at: float  # seconds after the start of the join phase
    worker: int

    @property
    def sub(self) -> str:
        return f"load-{self.index:05d}"

    @property
    def device_id(self) -> str:
        return f"load-dev-{self.index:05d}"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    channels: int
    per_channel: int
    talkers: int
    duration: float  # the measured window, seconds
    join_rate: float = 50.0  # participants per second
    warmup: float = 5.0  # seconds between the last join and the window
    workers: int = 1  # generator processes
    transcribe: bool = False
    talk_seconds: float = 5.0  # with pause_seconds > 0: length of each talk burst
    pause_seconds: float = 0.0  # silence between bursts; 0: talkers never pause
    channel_prefix: str = "load"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.per_channel < 1:
            raise ValueError("need at least one channel and one participant per channel")
        if not 0 <= self.talkers <= self.per_channel:
            raise ValueError("talkers must be between 0 and --per-channel")
        if self.total > MAX_PARTICIPANTS:
            raise ValueError(f"at most {MAX_PARTICIPANTS} participants")
        if not self.duration > 0:
            raise ValueError("duration must be > 0")
        if not self.join_rate > 0:
            raise ValueError("join rate must be > 0")
        if self.warmup < 0:
            raise ValueError("warm-up must be >= 0")
        if not 1 <= self.workers <= 64:
            raise ValueError("workers must be between 1 and 64")
        if self.pause_seconds < 0 or not self.talk_seconds > 0:
            raise ValueError("talk seconds must be > 0 and pause seconds >= 0")

    @property
    def total(self) -> int:
        return self.channels * self.per_channel

    @property
    def join_seconds(self) -> float:
        """When the last participant starts joining."""
        return (self.total - 1) / self.join_rate

    def channel_name(self, index: int) -> str:
        return f"{self.channel_prefix}-{index:03d}"

    def channel_names(self) -> list[str]:
        return [self.channel_name(c) for c in range(self.channels)]

    def specs(self) -> list[ParticipantSpec]:
        """Every participant, in join order."""
        order: list[tuple[int, bool]] = []
        for _t in range(self.talkers):
            order += [(c, True) for c in range(self.channels)]
        for _l in range(self.per_channel - self.talkers):
            order += [(c, False) for c in range(self.channels)]
        return [
            ParticipantSpec(
                index=i,
                channel=self.channel_name(c),
                channel_index=c,
                talker=talker,
                join_at=i / self.join_rate,
                worker=i % self.workers,
            )
            for i, (c, talker) in enumerate(order)
        ]

    def talking_at(self, index: int, seconds: float) -> bool:
        """Whether talker number ``index`` (join order) talks ``seconds`` after the start."""
        if self.pause_seconds <= 0:
            return True
        period = self.talk_seconds + self.pause_seconds
        offset = (index * 0.37 * period) % period  # spread the bursts over the period
        return (seconds + offset) % period < self.talk_seconds

    def expected_streams(self, talker: bool) -> int:
        """How many talkers a participant should hear (a talker does not hear itself)."""
        return self.talkers - 1 if talker else self.talkers

    def copies_per_routed_packet(self) -> int:
        """Every other member of the channel gets a copy of each routed packet."""
        return self.per_channel - 1

    def as_dict(self) -> dict[str, object]:
        return {
            "channels": self.channels,
            "per_channel": self.per_channel,
            "talkers": self.talkers,
            "participants": self.total,
            "duration": self.duration,
            "join_rate": self.join_rate,
            "warmup": self.warmup,
            "workers": self.workers,
            "transcribe": self.transcribe,
            "talk_seconds": self.talk_seconds if self.pause_seconds > 0 else None,
            "pause_seconds": self.pause_seconds,
        }

"""A talk burst's identity and metadata, and where its files live (pure).

Spool: ``spool/<id>.ogg.part`` while the server writes it, ``spool/<id>.ogg`` once it is closed
and fsynced (accepted). After the sidecar commits the utterance it moves the file to its clip
path ``clips/<channel>/<yyyy-mm-dd>/<id>.ogg`` (UTC date of the start). The metadata travels
inside the file as ``VOICE_*`` OpusTags comments, so a spool file needs nothing else to be
transcribed after an outage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from voice_server.calllog.model import BURST_ID_RE, KINDS, Utterance

__all__ = ["BurstMeta", "clip_path", "rows_of", "spool_name"]

SPOOL_DIR = "spool"
CLIPS_DIR = "clips"
SHARED_CLIPS = f"{CLIPS_DIR}/_shared"  # clips of broadcasts: one file, a row per channel
PART = ".ogg.part"
DONE = ".ogg"


@dataclass(frozen=True, slots=True)
class BurstMeta:
    id: str
    channel: str
    speaker_id: str
    speaker_name: str
    session_id: str
    start_ms: int  # wall clock of the first packet (pre-roll included)
    kind: str = "speech"  # the call-log row kind (talk.priority.Kind)
    also: tuple[str, ...] = ()  # the other channels it reached (an all-call): a row in each
    target_sub: str | None = None  # a direct talk's: the person talked to

    @property
    def shared(self) -> bool:
        """It reached several channels: one clip, a row per channel (``<id>:<channel>``)."""
        return bool(self.also)

    def tags(self) -> dict[str, str]:
        tags = {
            "VOICE_BURST": self.id,
            "VOICE_CHANNEL": self.channel,
            "VOICE_SPEAKER_ID": self.speaker_id,
            "VOICE_SPEAKER_NAME": self.speaker_name,
            "VOICE_SESSION": self.session_id,
            "VOICE_START_MS": str(self.start_ms),
        }
        if self.kind != "speech":
            tags["VOICE_KIND"] = self.kind
        if self.also:
            tags["VOICE_ALSO"] = ",".join(self.also)
        if self.target_sub is not None:
            tags["VOICE_TARGET"] = self.target_sub
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> BurstMeta:
        try:
            meta = cls(
                id=tags["VOICE_BURST"],
                channel=tags["VOICE_CHANNEL"],
                speaker_id=tags["VOICE_SPEAKER_ID"],
                speaker_name=tags.get("VOICE_SPEAKER_NAME", tags["VOICE_SPEAKER_ID"]),
                session_id=tags.get("VOICE_SESSION", ""),
                start_ms=int(tags["VOICE_START_MS"]),
                kind=_kind(tags.get("VOICE_KIND", "speech")),
                also=tuple(c for c in tags.get("VOICE_ALSO", "").split(",") if c),
                target_sub=tags.get("VOICE_TARGET"),
            )
        except (KeyError, ValueError):
            raise ValueError("the file's tags do not describe a burst") from None
        if not BURST_ID_RE.match(meta.id):
            raise ValueError("bad burst id in the file's tags")
        return meta


def _kind(value: str) -> str:
    if value not in KINDS:
        raise ValueError("unknown burst kind")
    return value


def spool_name(burst_id: str, *, part: bool = False) -> str:
    return f"{SPOOL_DIR}/{burst_id}{PART if part else DONE}"


def clip_path(meta: BurstMeta) -> str:
    """A channel's burst: under the channel's day folder; a burst of several channels: one
    shared clip (deleted with its last row)."""
    if meta.shared:
        return f"{SHARED_CLIPS}/{meta.id}{DONE}"
    day = datetime.fromtimestamp(meta.start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
    return f"{CLIPS_DIR}/{meta.channel}/{day}/{meta.id}{DONE}"


def rows_of(meta: BurstMeta, utterance: Utterance) -> list[Utterance]:
    """The call-log rows of a transcribed burst: one; or, for a burst that reached several
    channels, one per channel (uid ``<burst id>:<channel>``, the burst id as broadcast id, the
    same clip and text). Each keeps the burst's kind and target."""
    base = replace(utterance, kind=meta.kind, target_sub=meta.target_sub)
    if not meta.shared:
        return [base]
    return [
        replace(base, id=f"{meta.id}:{channel}", channel=channel, broadcast_id=meta.id)
        for channel in (meta.channel, *meta.also)
    ]


def burst_id_of(filename: str) -> str | None:
    """The burst id of a spool file name (``<id>.ogg`` or ``<id>.ogg.part``), else None."""
    for suffix in (PART, DONE):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            return stem if BURST_ID_RE.match(stem) else None
    return None


__all__ += ["CLIPS_DIR", "DONE", "PART", "SHARED_CLIPS", "SPOOL_DIR", "burst_id_of"]

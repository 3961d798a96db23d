"""Ogg encapsulation of Opus (RFC 3533 pages, RFC 7845 Ogg Opus): write and read (pure).

The server remuxes the Opus packets it received into an Ogg file, no re-encode: an ``OpusHead``
page (beginning of stream), an ``OpusTags`` page (the burst's metadata as ``VOICE_*`` comments),
then audio pages whose granule position is the count of 48 kHz samples decoded so far. Packets
never span pages. A file cut short by a crash reads back up to its last complete page.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "OggError",
    "OggOpus",
    "OggOpusWriter",
    "Page",
    "crc32_ogg",
    "opus_head",
    "opus_tags",
    "parse_opus_tags",
    "read_ogg_opus",
    "read_pages",
]

_PAGE_HEAD = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seq, crc, n
FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04
PACKETS_PER_PAGE = 50  # one second of 20 ms packets
VENDOR = "voice-server"


class OggError(ValueError):
    """Not an Ogg Opus stream this module can read."""


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def crc32_ogg(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, not reflected, initial value 0)."""
    crc = 0
    table = _CRC
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) & 0xFF) ^ b]
    return crc


def build_page(
    packets: list[bytes], *, granule: int, serial: int, sequence: int, flags: int = 0
) -> bytes:
    lacing = bytearray()
    for p in packets:
        n = len(p)
        lacing += b"\xff" * (n // 255) + bytes((n % 255,))
    if len(lacing) > 255:
        raise ValueError("too many segments for one Ogg page")
    head = _PAGE_HEAD.pack(b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(head + bytes(lacing) + b"".join(packets))
    struct.pack_into("<I", page, 22, crc32_ogg(bytes(page)))
    return bytes(page)


def opus_head(*, channels: int = 1, pre_skip: int = 0, input_rate: int = 48000) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def opus_tags(tags: dict[str, str]) -> bytes:
    vendor = VENDOR.encode()
    out = bytearray(b"OpusTags" + struct.pack("<I", len(vendor)) + vendor)
    out += struct.pack("<I", len(tags))
    for key, value in tags.items():
        item = f"{key}={value}".encode()
        out += struct.pack("<I", len(item)) + item
    return bytes(out)


def parse_opus_tags(packet: bytes) -> dict[str, str]:
    if not packet.startswith(b"OpusTags") or len(packet) < 16:
        raise OggError("second packet is not OpusTags")
    try:
        pos = 8
        (vlen,) = struct.unpack_from("<I", packet, pos)
        pos += 4 + vlen
        (count,) = struct.unpack_from("<I", packet, pos)
        pos += 4
        tags: dict[str, str] = {}
        for _ in range(min(count, 1000)):
            (n,) = struct.unpack_from("<I", packet, pos)
            pos += 4
            key, _, value = packet[pos : pos + n].decode("utf-8").partition("=")
            pos += n
            tags[key.upper()] = value
        return tags
    except (struct.error, UnicodeDecodeError):
        raise OggError("malformed OpusTags") from None


class OggOpusWriter:
    """Writes one logical Ogg Opus stream through ``write`` (a file's write method).

    The two header pages are written at once, in one call; :meth:`add` buffers packets; a page
    is written every :data:`PACKETS_PER_PAGE` packets, on :meth:`flush` and on :meth:`close`
    (the end-of-stream page).
    """

    def __init__(
        self, write: Callable[[bytes], object], *, serial: int, tags: dict[str, str]
    ) -> None:
        self._write = write
        self._serial = serial & 0xFFFFFFFF
        self._sequence = 0
        self._pending: list[bytes] = []
        self._segments = 0
        self.granule = 0
        self.packets = 0
        self.bytes = 0
        self.closed = False
        # both header pages in one write: a file cut then has the whole header or none of it
        head = self._build([opus_head()], granule=0, flags=FLAG_BOS)
        self._write(head + self._build([opus_tags(tags)], granule=0))

    def _build(self, packets: list[bytes], *, granule: int, flags: int = 0) -> bytes:
        page = build_page(
            packets, granule=granule, serial=self._serial, sequence=self._sequence, flags=flags
        )
        self._sequence += 1
        self.bytes += len(page)
        return page

    def _page(self, packets: list[bytes], *, granule: int, flags: int = 0) -> None:
        self._write(self._build(packets, granule=granule, flags=flags))

    def add(self, packet: bytes, samples: int) -> None:
        segments = len(packet) // 255 + 1
        if self._segments + segments > 255 or len(self._pending) >= PACKETS_PER_PAGE:
            self.flush()
        self._pending.append(packet)
        self._segments += segments
        self.granule += samples
        self.packets += 1

    def flush(self) -> None:
        if self._pending:
            self._page(self._pending, granule=self.granule)
            self._pending = []
            self._segments = 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        packets, self._pending, self._segments = self._pending, [], 0
        self._page(packets, granule=self.granule, flags=FLAG_EOS)


@dataclass(frozen=True, slots=True)
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    segments: tuple[int, ...]
    body: bytes


def read_pages(data: bytes) -> list[Page]:
    """Every complete page with a valid CRC, up to the first that is not."""
    pages: list[Page] = []
    pos = 0
    n = len(data)
    while pos + 27 <= n:
        capture, version, flags, granule, serial, seq, crc, nseg = _PAGE_HEAD.unpack_from(data, pos)
        if capture != b"OggS" or version != 0 or pos + 27 + nseg > n:
            break
        segments = tuple(data[pos + 27 : pos + 27 + nseg])
        end = pos + 27 + nseg + sum(segments)
        if end > n:
            break
        raw = bytearray(data[pos:end])
        raw[22:26] = b"\0\0\0\0"
        if crc32_ogg(bytes(raw)) != crc:
            break
        pages.append(Page(flags, granule, serial, seq, segments, data[pos + 27 + nseg : end]))
        pos = end
    return pages


@dataclass(frozen=True, slots=True)
class OggOpus:
    tags: dict[str, str]
    packets: tuple[bytes, ...]
    granule: int  # samples at 48 kHz covered by the complete pages
    complete: bool  # the end-of-stream page is there


def read_ogg_opus(data: bytes) -> OggOpus:
    """The tags and audio packets of an Ogg Opus stream (a truncated one reads partially)."""
    pages = read_pages(data)
    packets: list[bytes] = []
    current = bytearray()
    granule = 0
    complete = False
    for page in pages:
        pos = 0
        for seg in page.segments:
            current += page.body[pos : pos + seg]
            pos += seg
            if seg < 255:
                packets.append(bytes(current))
                current = bytearray()
        if page.granule >= 0 and len(packets) > 2:
            granule = page.granule
        complete = complete or bool(page.flags & FLAG_EOS)
    if len(packets) < 2 or not packets[0].startswith(b"OpusHead"):
        raise OggError("not an Ogg Opus stream (no OpusHead/OpusTags)")
    return OggOpus(parse_opus_tags(packets[1]), tuple(packets[2:]), granule, complete)

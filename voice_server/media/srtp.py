"""SRTP protection profiles and libsrtp sessions keyed from DTLS-SRTP.

- RFC 5764 section 4.1.2 (``SRTP_AES128_CM_SHA1_80``) and RFC 7714 section 14.2
  (``SRTP_AEAD_AES_128_GCM``): the profiles the server negotiates, with their master key and
  salt lengths.
- RFC 5764 section 4.2: the exporter label ``EXTRACTOR-dtls_srtp`` yields
  ``client_key | server_key | client_salt | server_salt``; each side sends with its own key and
  salt and receives with the peer's. libsrtp takes "master key || master salt" as one string.

Errors the caller must count (never let them escape the datagram handler):

- ``pylibsrtp.Error`` from ``unprotect``/``unprotect_rtcp``: authentication failure (forged or
  corrupted packet, wrong key), replay check failed (duplicate or older than the window);
  from ``protect``: e.g. a replayed index when ``allow_repeat_tx`` is off.
- ``ValueError("packet is too long")``: the packet does not fit pylibsrtp's 1500-byte buffer
  (input over 1500 bytes to unprotect, over 1356 to ``protect``, over 1352 to ``protect_rtcp``).
- ``TypeError``: the packet is not ``bytes`` (a ``bytearray`` is refused: convert first).
"""

from __future__ import annotations

from dataclasses import dataclass

import pylibsrtp

__all__ = [
    "DEFAULT_PROFILES",
    "PROFILES",
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AES128_CM_SHA1_80",
    "SrtpProfile",
    "make_sessions",
    "split_keying",
]

DEFAULT_WINDOW = 1024  # replay window, packets (libsrtp default 128 is short for bursts)


@dataclass(frozen=True, slots=True)
class SrtpProfile:
    """A DTLS-SRTP protection profile."""

    #: the OpenSSL / IANA name, e.g. ``"SRTP_AEAD_AES_128_GCM"``
    name: str
    key_length: int
    salt_length: int
    #: bytes SRTP adds to each RTP packet (authentication tag)
    rtp_overhead: int
    libsrtp_profile: int

    @property
    def keying_length(self) -> int:
        """Bytes to export from the DTLS session: two keys and two salts."""
        return 2 * (self.key_length + self.salt_length)


SRTP_AEAD_AES_128_GCM = SrtpProfile(
    "SRTP_AEAD_AES_128_GCM", 16, 12, 16, pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
)
SRTP_AES128_CM_SHA1_80 = SrtpProfile(
    "SRTP_AES128_CM_SHA1_80", 16, 14, 10, pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
)
#: preference order of the server (OpenSSL picks the first one the client also offers)
DEFAULT_PROFILES: tuple[SrtpProfile, ...] = (SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80)
PROFILES: dict[str, SrtpProfile] = {p.name: p for p in DEFAULT_PROFILES}


def split_keying(profile: SrtpProfile, material: bytes, *, server: bool) -> tuple[bytes, bytes]:
    """Split exported keying material into ``(rx_key_and_salt, tx_key_and_salt)``.

    ``material`` is ``client_key | server_key | client_salt | server_salt``. The DTLS server
    receives with the client's key and salt and sends with its own; a client the reverse.
    """
    k, s = profile.key_length, profile.salt_length
    if len(material) != 2 * (k + s):
        raise ValueError(f"keying material must be {2 * (k + s)} bytes for {profile.name}")
    client = material[0:k] + material[2 * k : 2 * k + s]
    server_ = material[k : 2 * k] + material[2 * k + s : 2 * (k + s)]
    return (client, server_) if server else (server_, client)


def make_sessions(
    profile: str | SrtpProfile,
    keying: tuple[bytes, bytes],
    *,
    window_size: int = DEFAULT_WINDOW,
) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """Create ``(rx, tx)`` libsrtp sessions from ``keying = (rx_key_and_salt, tx_key_and_salt)``.

    ``rx`` accepts any inbound SSRC (``unprotect``/``unprotect_rtcp``), ``tx`` protects any
    outbound SSRC (``protect``/``protect_rtcp``); one ``tx`` serves all of a listener's slot
    SSRCs. Both allow repeated indexes on send (a talker switch may reuse a sequence number)
    and use a replay window of ``window_size`` packets. Raises KeyError for an unknown profile
    name and ValueError for a key of the wrong length.
    """
    p = PROFILES[profile] if isinstance(profile, str) else profile
    rx_key, tx_key = keying
    expected = p.key_length + p.salt_length
    if len(rx_key) != expected or len(tx_key) != expected:
        raise ValueError(f"{p.name} needs {expected}-byte key+salt strings")
    sessions: list[pylibsrtp.Session] = []
    for key, ssrc_type in (
        (rx_key, pylibsrtp.Policy.SSRC_ANY_INBOUND),
        (tx_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND),
    ):
        policy = pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=p.libsrtp_profile)
        policy.allow_repeat_tx = True
        policy.window_size = window_size
        sessions.append(pylibsrtp.Session(policy))
    return sessions[0], sessions[1]

"""Media plane counters: plain integers bumped on the hot path, rendered at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from voice_server.histogram import LatencyHistogram
from voice_server.metrics import Family

_DROPS = {
    "unknown_source": "drop_unknown_source",
    "bad_srtp": "drop_bad_srtp",
    "bad_rtp": "drop_bad_rtp",
    "bad_red": "drop_bad_red",
    "bad_rtcp": "drop_bad_rtcp",
    "rtcp_flood": "drop_rtcp_flood",
    "bad_stun": "drop_bad_stun",
    "not_ready": "drop_not_ready",
    "slot_busy": "drop_slot_busy",
    "listen_only": "drop_listen_only",
    "stale": "drop_stale",
    "send_error": "drop_send_error",
}


@dataclass(slots=True)
class MediaCounters:
    """Plain integers; the hot path only does ``+= 1``."""

    bytes_in: int = 0
    bytes_out: int = 0
    drop_bad_rtcp: int = 0
    drop_rtcp_flood: int = 0  # RTCP over a participant's rate (RTCP_RATE, RTCP_BURST): unread
    drop_bad_rtp: int = 0
    drop_bad_red: int = 0  # audio RED with inconsistent block lengths or timestamps
    drop_bad_srtp: int = 0
    drop_bad_stun: int = 0
    drop_listen_only: int = 0  # RTP of a member whose route sends nowhere (a listener)
    drop_not_ready: int = 0
    drop_send_error: int = 0
    drop_slot_busy: int = 0
    drop_stale: int = 0
    drop_unknown_source: int = 0
    dtls_handshakes: int = 0
    dtls_failures: int = 0
    packets_in: int = 0
    packets_out: int = 0
    #: packets of a talker holding a slot, each copied to every other connected member
    packets_routed: int = 0
    #: of those, late packets (reordered on the talker's uplink) forwarded into their hole
    late_forwarded: int = 0
    preemptions: int = 0  # cut-ins that paused a lower-level holder (clicks included)
    renegotiations: int = 0
    renegotiations_ignored: int = 0
    ice_restarts: int = 0  # ICE restart offers (a participant's network changed)
    talk_held_restart: int = 0  # bursts kept going across their talker's ICE restart
    #: media sent to another validated address because the peer's SRTP/SRTCP came from it
    media_latched: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    rtcp_receiver_reports: int = 0
    fec_packets_in: int = 0  # talkers' Opus packets carrying in-band FEC (LBRR)
    red_packets_in: int = 0  # talkers' audio RED packets (RFC 2198)
    red_routed: int = 0  # of those, forwarded as RED (to listeners that negotiated it)
    red_recovered: int = 0  # frames the call log got from RED redundancy (a lost packet's)
    rtcp_talker_reports: int = 0  # receiver reports sent to talkers about their uplink
    rtcp_keepalives: int = 0  # empty receiver reports to talkers sending voice (stall detection)
    slot_busy_bursts: int = 0
    stun_requests: int = 0
    talk_bursts: int = 0
    transports_closed_consent: int = 0
    # ICE-TCP (voice_server.media.tcp_endpoint)
    tcp_accepted: int = 0
    tcp_refused: int = 0  # over the pending limits, or accept() failed
    tcp_expired: int = 0  # no valid ICE check within the deadline
    tcp_bad_frames: int = 0  # malformed or over-long RFC 4571 frame: connection closed
    tcp_out_dropped: int = 0  # frames dropped from a slow reader's full send queue
    tcp_closed: int = 0

    def drops(self) -> dict[str, int]:
        return {reason: int(getattr(self, attr)) for reason, attr in _DROPS.items()}

    def families(self, histogram: LatencyHistogram, talkers: int, transports: int) -> list[Family]:
        fams = [
            Family("voice_media_packets_in_total", "counter", "RTP packets received").add(
                self.packets_in
            ),
            Family("voice_media_bytes_in_total", "counter", "Media bytes received").add(
                self.bytes_in
            ),
            Family("voice_media_packets_out_total", "counter", "RTP packets forwarded").add(
                self.packets_out
            ),
            Family(
                "voice_media_packets_routed_total",
                "counter",
                "RTP packets of talkers holding a slot (each copied to every other member)",
            ).add(self.packets_routed),
            Family("voice_media_bytes_out_total", "counter", "Media bytes forwarded").add(
                self.bytes_out
            ),
        ]
        drops = Family("voice_media_drops_total", "counter", "Datagrams dropped by reason")
        for reason, value in self.drops().items():
            drops.add(value, reason=reason)
        fams.append(drops)
        for name, help_text in [
            ("late_forwarded", "Talkers' late packets forwarded into their hole (reordered)"),
            ("rtcp_in", "RTCP packets received"),
            ("rtcp_out", "RTCP packets sent"),
            ("rtcp_receiver_reports", "RTCP receiver report blocks read"),
            ("fec_packets_in", "Talkers' Opus packets carrying in-band FEC (LBRR)"),
            ("red_packets_in", "Talkers' audio RED packets (RFC 2198)"),
            ("red_routed", "Talkers' RED packets forwarded as RED (to listeners with RED)"),
            ("red_recovered", "Lost frames the call log got from RED redundancy"),
            ("rtcp_talker_reports", "RTCP receiver reports sent to talkers about their uplink"),
            ("rtcp_keepalives", "Empty RTCP receiver reports sent to talkers sending voice"),
            ("stun_requests", "STUN binding requests answered"),
            ("media_latched", "Media moved to the validated address a peer's SRTP came from"),
            ("dtls_handshakes", "DTLS handshakes completed"),
            ("dtls_failures", "DTLS handshakes failed"),
            ("talk_bursts", "Talk bursts given a slot"),
            ("slot_busy_bursts", "Talk bursts that found every slot busy"),
            ("preemptions", "Cut-ins of a higher-level talker that paused a slot holder"),
            ("transports_closed_consent", "Transports closed after ICE consent expired"),
            ("renegotiations", "Renegotiation answers applied on a live peer connection"),
            ("renegotiations_ignored", "Renegotiation answers ignored (stale or mismatched)"),
            ("ice_restarts", "ICE restarts offered on a live peer connection (network change)"),
            ("talk_held_restart", "Talk bursts kept going across their talker's ICE restart"),
            ("tcp_accepted", "ICE-TCP connections accepted"),
            ("tcp_refused", "ICE-TCP connections refused (pending limits)"),
            ("tcp_expired", "ICE-TCP connections closed: no valid ICE check in time"),
            ("tcp_bad_frames", "ICE-TCP connections closed on a malformed or over-long frame"),
            ("tcp_out_dropped", "Frames dropped from a slow ICE-TCP reader's send queue"),
            ("tcp_closed", "ICE-TCP connections closed"),
        ]:
            fams.append(
                Family(f"voice_media_{name}_total", "counter", help_text).add(getattr(self, name))
            )
        fams.append(
            Family("voice_media_active_talkers", "gauge", "Talkers holding a slot").add(talkers)
        )
        fams.append(
            Family("voice_media_transports", "gauge", "Open media transports").add(transports)
        )
        fams.append(
            histogram.family(
                "voice_media_forward_seconds",
                "Time from datagram arrival (kernel timestamp) to the send of each forwarded copy",
            )
        )
        return fams

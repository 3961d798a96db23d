"""Simulated participants: lean WebRTC clients for load and integration tests (no aiortc).

- ``participant``: :class:`SimParticipant` (signaling, ICE, DTLS-SRTP, RTP send/receive);
- ``group``: :class:`SimGroup`, many participants driven by one ``pacer`` in one process;
- ``answer`` (SDP offer reading and answer), ``dtls_client`` (DTLS 1.2 client, sans I/O),
  ``rx_stats`` (loss, jitter per received stream), ``audio`` (Opus frames, RTP packets).
"""

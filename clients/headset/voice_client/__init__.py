"""voice-client: the headset client (a standard aiortc peer)."""

"""Missed-message replay: who was away when (presence), what they missed (listing), the bursts
not transcribed yet (pending)."""

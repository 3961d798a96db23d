"""Speech synthesis (offline): :mod:`voice_server.tts.openjtalk` for Japanese."""

"""Spoken announcements: typed text synthesised once (Open JTalk), encoded to Opus once and
played into each target channel as a server-side source; a call-log row per reached channel and
who heard it there."""

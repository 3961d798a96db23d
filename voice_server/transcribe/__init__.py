"""Transcription: the server-side tap and spool, the server ↔ sidecar link, and the sidecar."""

"""Alerts: one model for emergencies, keyword alerts and transcription alerts; their store, the
keyword matcher and the dashboard's event feed (README "Alerts")."""

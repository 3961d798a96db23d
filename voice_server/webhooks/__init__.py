"""Signed webhooks (Standard Webhooks): endpoints, a persistent bounded delivery queue with
retries and a dead-letter list, and the dispatcher (README "Webhooks")."""

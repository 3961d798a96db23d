"""Accounts: users, channel assignments, passwords, web sessions, sign-in codes."""

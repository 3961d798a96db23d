"""Hands-free group voice server for field staff."""

__version__ = "0.1.0"

"""tidings: a real-time notification server."""

__version__ = "0.1.0"

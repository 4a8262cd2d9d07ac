"""The session-daemon fixture of the daemon tests, for virtdeck's side."""

from tests.remote.conftest import session

__all__ = ["session"]

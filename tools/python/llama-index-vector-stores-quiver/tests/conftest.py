"""Fixtures: one quiverd for the session and clients on it, from quiver_client.testing (server, client, aclient,
name; a failing test gets the server log's tail). The binary: $QUIVERD, else <repo>/build/quiverd; QV_KEEP=1 keeps
the server's data directory and log."""
from quiver_client.testing import *  # noqa: F401,F403

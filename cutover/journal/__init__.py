"""The journal's backends (SQLite, PostgreSQL), leases and the test-only crash hook."""

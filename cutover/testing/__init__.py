"""Test doubles shipped with the package, for unit tests of the pure core."""

from cutover.testing.journal import InMemoryJournal as InMemoryJournal

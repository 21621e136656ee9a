"""Test doubles shipped with the package, for unit tests of the pure core."""

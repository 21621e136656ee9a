"""Stdlib-only tools copied onto the lab's hosts (see ``samulab``)."""

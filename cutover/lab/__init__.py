"""The local lab: real sshd per SAMU site, real databases, continuous synthetic call traffic."""

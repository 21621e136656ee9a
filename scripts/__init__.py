"""What `make night` and `make proof` run: the lab night end to end, and the longer proofs (not shipped)."""

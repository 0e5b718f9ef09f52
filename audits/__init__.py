"""The tamper-evident audit log: events, the Merkle tree over them, signed checkpoints, proofs."""

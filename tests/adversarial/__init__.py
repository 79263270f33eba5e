"""The standing adversarial suite (issue 19): attacks on one real `matcher serve` over real
sockets, each followed by the same invariant checks (harness.py)."""

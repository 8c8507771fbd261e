"""distribution-based losses (stub: being written)."""

SPECS: list = []

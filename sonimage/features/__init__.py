"""IBSI-1 lesion features: one module per feature family, pure functions on plain arrays."""

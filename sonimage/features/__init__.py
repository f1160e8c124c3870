"""IBSI-1 lesion features: one module per feature family, pure functions on plain arrays; image processing and
IBSI compliance beside them, IBSI-2 filters in ``filters``."""

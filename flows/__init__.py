"""Prefect flows over the sonimage library: thin tasks that pass paths and small records, never arrays."""

"""Parquet tables: atomic writes, manifests, quarantine."""

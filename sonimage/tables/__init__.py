"""The study's tables and their formats: lesion and patient tables (patient metrics, the FES call), the
conversion's manifest and quarantine, the clinical tables and their join, Parquet writing and cohort partitions.
(Atomic writes themselves are :mod:`sonimage.io`.)"""

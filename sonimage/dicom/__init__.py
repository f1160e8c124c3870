"""DICOM reading: indexing a tree, grouping series, vendor-neutral SUV, pseudonyms."""

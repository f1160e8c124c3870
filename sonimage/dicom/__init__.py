"""DICOM reading: indexing a tree, grouping series, vendor-neutral SUV and body-size normalisers, RTSTRUCT
rasterisation, pseudonyms, and converting series into volume stores (``conversion``)."""

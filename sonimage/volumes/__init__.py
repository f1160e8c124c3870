"""Image volumes: the in-memory grid (``volume``), the chunked Zarr stores (``store``) and the conversion of DICOM
series into them (``convert``)."""

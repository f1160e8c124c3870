"""Image volumes: the in-memory grid (``volume``) and its chunked Zarr stores (``store``); DICOM series are
converted into them by :mod:`sonimage.dicom.conversion`, run by :mod:`sonimage.stages.convert`."""

"""Image volumes: the in-memory grid (``volume``), the chunked Zarr stores (``store``) and the steps that convert
DICOM series into them (``from_dicom``; the stage that runs them is :mod:`sonimage.stages.convert`)."""

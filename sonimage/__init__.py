"""sonimage: multi-centre FES/FDG-PET study pipeline, from DICOM to validated survival models."""

__version__ = "0.1.0"

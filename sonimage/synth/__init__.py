"""Synthetic SONImage cohorts written as real DICOM, with known ground truth."""

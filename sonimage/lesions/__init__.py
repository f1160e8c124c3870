"""Lesion masks: RTSTRUCT, SEG and label maps on an image grid."""

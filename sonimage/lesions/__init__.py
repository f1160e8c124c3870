"""Lesions on the converted scans: their masks, their reading and their features.

Masks a site delivers (``inputs``: any image and mask file; ``seg``, ``labelmap``; RTSTRUCT in
:mod:`sonimage.dicom.rtstruct`); reading a lesion beyond the reader contour (``registration`` of the FDG contours
onto the FES scan, ``liver`` reference VOI, ``fes_reading`` evaluability and call inputs, ``delineation`` for MTV
and TLG, ``reading`` per patient); and the feature stage over a converted tree (``jobs`` per lesion, ``tree``,
``reuse`` of unchanged patients; ``scan`` for one scan's files).
"""

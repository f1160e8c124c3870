"""SONImage's own analysis, built on the general methods of :mod:`sonimage.survival`.

Modules: ``objectives`` (the study's five objectives on per-cohort tables), ``lesion_response`` (objective 3:
lesion response by FES uptake, patient random effect), ``appraisal`` (what the study can show: sample size, power,
benefit by cohort design, multiplicity), ``sensitivity`` (the objectives under alternative choices) and ``results``
(the whole analysis as one call, :func:`~sonimage.analysis.results.analyse`, returning the
:class:`~sonimage.analysis.results.StudyResult` the report renders).
"""

"""The stages of a run, each written once as plan → one item per patient → gather, run by ``run(..., executor)``.

- :mod:`sonimage.stages.convert`: DICOM tree → one Zarr store per series, manifest and quarantine tables.
- :mod:`sonimage.stages.extract`: converted stores → lesion features, lesion, patient and QC tables.
- :mod:`sonimage.stages.analyse`: feature tables + clinical tables → objectives 1–5 and the report.
- :mod:`sonimage.stages.scan` (with :mod:`sonimage.stages.inputs`, which reads any image and mask file a site
  delivers): features of every lesion of one scan, the item of ``sonimage features``.

``executor`` is anything with ``submit(fn, *args)`` (:class:`sonimage.parallel.Executor`): None runs in process, a
``distributed.Client`` on a Dask cluster, ``flows.tasks.PrefectExecutor`` as named, retried Prefect tasks of one
or several consecutive items (:func:`sonimage.parallel.run_group`; same results, same order).
The CLI, the flows, the benchmarks and the tests all call these recipes.
"""

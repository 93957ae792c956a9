"""Small helpers shared by several modules: one implementation per job.

- :mod:`~rgenima._utils.jsonsafe`: values made JSON-serialisable (:func:`json_safe`);
- :mod:`~rgenima._utils.hashing`: sha256 of a file (:func:`sha256_file`);
- :mod:`~rgenima._utils.stats`: bootstrap resamples and percentile intervals;
- :mod:`~rgenima._utils.params`: values typed on the command line (``-p NAME VALUE``).
"""

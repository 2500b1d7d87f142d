"""End-to-end jobs built from the other packages: :mod:`~qdmodels.workflows.demo` (``qd demo``)."""

"""The ``coral-runtime`` command line."""

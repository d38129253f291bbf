"""The version of rewa, in one place (pyproject reads it; so does ``rewa.__version__``)."""

__version__ = "0.1.0"

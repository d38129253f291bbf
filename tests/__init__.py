"""The test suite; a package so its helper modules (methods_table) import as tests.<name>."""

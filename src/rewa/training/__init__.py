"""The training layer's pieces that stand alone: the run directory's files (atomic writes,
standard JSON, the checksummed checkpoint), signals, processes and the checks of a run's data."""

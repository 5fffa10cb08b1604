"""distilabel's package path ``distilabel.steps.tasks.evol_quality``, for the module paths
under it (import-only)."""

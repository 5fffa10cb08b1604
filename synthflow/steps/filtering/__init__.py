"""distilabel's package path ``distilabel.steps.filtering``, for the module paths
under it (import-only)."""

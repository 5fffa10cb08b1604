"""distilabel's package path ``distilabel.steps.tasks.evol_instruct``, for the module paths
under it (import-only)."""

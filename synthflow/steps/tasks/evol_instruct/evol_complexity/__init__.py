"""distilabel's package path ``distilabel.steps.tasks.evol_instruct.evol_complexity``,
for the module paths
under it (import-only)."""

"""CI/CD for models: workflows that train and gate on a pull request, and request promotion
on merge, calling the same `mlstack` commands people run by hand."""

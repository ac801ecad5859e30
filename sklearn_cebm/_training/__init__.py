"""The training layer: skorch nets over the torch core, and the callbacks they run.

Knows torch and skorch; nothing here imports the estimators.
"""

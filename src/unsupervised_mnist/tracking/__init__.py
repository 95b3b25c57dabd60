"""MLflow tracking and the model registry, in two parts by when they run.

Training-time (`runs`): where runs go, and one run per model per pipeline execution, opened by `train@M`
and later given its evaluation by `register`. Register-time (`registry`, with `task`, `gate`, `exports`):
log the models, register them, move `candidate` and the per-task champions. mlflow is imported inside the
functions that need it, so the library trains and evaluates on machines without it (tracking off).
"""

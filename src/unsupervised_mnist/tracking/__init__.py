"""MLflow tracking and the model registry.

`runs` opens and fills one run per model (and per baseline); `registry` logs the models, registers
them and moves the `candidate` and `champion` aliases; `gate` is the pure decision behind `champion`.
mlflow is imported lazily, inside the functions that need it, so the library trains and evaluates on
machines without it (UMNIST_MLFLOW=off or `mlflow.enabled: false`).
"""

"""Which distribution provides each adapter we know of, for the 'pip install …' hint."""

KNOWN_PACKAGES: dict[str, str] = {
    "mlflow": "mlstack-mlflow",
    "feast": "mlstack-feast",
    "bentoml": "mlstack-bentoml",
    "evidently": "mlstack-evidently",
    "prefect": "mlstack-prefect",
    "zenml": "mlstack-zenml",
    "kfp": "mlstack-kfp",
    "local": "mlstack",
}

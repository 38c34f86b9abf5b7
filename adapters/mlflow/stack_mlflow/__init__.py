"""mlstack's MLflow adapter: the Tracker and Registry roles on MLflow 3.

Import `stack_mlflow.tracker` or `stack_mlflow.registry` to get the implementations; this
package itself imports no MLflow.
"""

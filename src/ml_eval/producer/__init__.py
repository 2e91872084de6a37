"""The producer: trains candidate models on a dataset, tracks them in MLflow, stores their predictions."""

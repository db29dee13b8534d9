"""What runs on a Ray worker: datasets, folds, protocols, the trial loop, MLflow logging."""

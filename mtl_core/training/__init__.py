"""Training and evaluation on the data folder: the training loop, cached features, metrics and reports."""

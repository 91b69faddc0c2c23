"""Training: the fit loop (batches, augmentation, optimiser, checkpoints, resume, early stopping, time limit)."""

"""Experiments: config schema and validation, run directories, checkpoints, training, evaluation."""

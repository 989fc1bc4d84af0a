"""Training: config, trainer, data, modes, losses, logging, validation, checkpoints."""

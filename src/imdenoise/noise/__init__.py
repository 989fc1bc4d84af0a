"""Noise: synthetic noise models (models), the camera pipeline, and noise-level estimation."""

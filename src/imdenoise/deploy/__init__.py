"""Deployment: int8 quantization and channel pruning of trained models."""

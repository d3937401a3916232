"""Unlearning jobs: remove forgotten facts from model weights behind evaluation gates."""

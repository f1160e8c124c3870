"""Survival modelling: Cox fits, benefit prediction, internal and external validation."""

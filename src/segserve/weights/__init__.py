"""Model weights: the on-disk bundle format, official downloads and random-weight test models."""

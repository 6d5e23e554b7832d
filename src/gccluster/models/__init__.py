"""Feature extractors F, heads (projection g, cluster head C) and loading them from checkpoints."""

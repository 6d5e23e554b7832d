"""Training loops (SimCLR, the cluster head, the GCC rounds), optimisers and resumable state."""

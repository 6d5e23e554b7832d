"""GCC: Generative Calibration Clustering, as a DVC pipeline (stages in stages/, logic here)."""

"""Datasets: facts (catalog), readers of the official formats (sources), the prepared format and SimCLR views."""

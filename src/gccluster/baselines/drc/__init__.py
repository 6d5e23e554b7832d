"""DRC: Deep Robust Clustering by contrastive learning (Zhong et al., arXiv 2008.03030).

`params` (its params section), `model` (the clustering network: trunk, main head and the
optional over-clustering head; the Sobel front end and PICA's ResNet-34), `losses` (Eq. 5,
8, 9 and their sum Eq. 10), `method` (training as PICA's code runs it, which DRC follows).
Specification: ../shared/baselines/drc-gatcluster.md, Part A.
"""

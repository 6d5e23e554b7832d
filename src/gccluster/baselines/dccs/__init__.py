"""DCCS: Deep Clustering with Category-Style representation (Zhao et al., ECCV 2020).

`params` (its params section), `model` (encoder Q, critic C, MI discriminator D, prior P_Z),
`losses` (Eq. 6, 7, 10, 11 and the totals Eq. 12-14), `method` (Algorithm 1 and the
label-free stopping rule). Specification: ../shared/baselines/dccs-precise.md, Part A.
"""

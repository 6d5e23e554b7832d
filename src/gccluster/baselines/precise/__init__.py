"""The precise-feature method: Learning the Precise Feature for Cluster Assignment (Gan, Dong,
Zhou, Gao, Dong, IEEE T-Cybernetics 2021; arXiv 2106.06159).

`params` (its params section: the paper's Algorithm 1 values, the code's step doubling as a
value), `model` (the conditional generator G(y, z), the WGAN-GP critic D and the classifier C
of the paper's Fig. 2, with the per-size rules), `losses` (Eq. 5-8), `method` (Algorithm 1).
Specification: ../shared/baselines/dccs-precise.md, Part B.
"""

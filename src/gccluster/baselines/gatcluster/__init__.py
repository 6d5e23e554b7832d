"""GATCluster: Self-Supervised Gaussian-Attention Network for Image Clustering (Niu et al.,
ECCV 2020).

`params` (its params section, with the paper-vs-code readings as values), `model` (the VGG-style
grayscale trunk to a 6 x 6 x K map, the label feature module and the Gaussian attention
module), `losses` (the targets of Eq. 5, 6, 11 and the losses of Eq. 4, 7, 8, 10, summed by
Eq. 3), `method` (Algorithm 1's two-step training as the official code runs it).
Specification: ../shared/baselines/drc-gatcluster.md, Part B.
"""

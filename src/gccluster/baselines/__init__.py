"""The seed methods beside GCC (DESIGN.md §8): DCCS, DRC and GATCluster so far; the
precise-feature method follows.

Each method is a subpackage `gccluster.baselines.<name>` with
- `params.py`: its typed params section (`baselines.<name>` in params.yaml), registered into
  the one validated `Params` through `baselines.params`;
- `method.py`: `train(request) -> TrainedBaseline` (train images only, never labels) and
  `load(path) -> ClusterModel`, found by name through `baselines.registry`.

This package and the `params` modules stay free of torch: config.py imports them, so every
stage does (though only the report and each method's own `baseline@<name>` list a method's
params module as a dep: see gccluster.stagedeps).
"""

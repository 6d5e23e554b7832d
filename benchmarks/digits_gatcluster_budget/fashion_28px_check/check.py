"""Does GATCluster's [0, 1] input change the 28 px (unpadded) trunk's training? Both inputs,
seed 0, fp32, a few iterations on Fashion-MNIST's prepared train images; prints Eq. 3's parts
per iteration. No label is read. The committed output came from the code of b61be17, when
training mapped its [0, 1] views to [-1, 1] and back (`to_grey_input(to_model_input(.))`);
since b9ce976 training feeds them to the network directly, and since the key
`baselines.gatcluster.input_range` the network maps them (`unit` = [0, 1], `symmetric` =
[-1, 1]), which this script now sets instead of patching."""
import sys
import torch
import gccluster.baselines.gatcluster.method as method
from gccluster.baselines.common import TrainRequest
from gccluster.baselines.gatcluster.params import GATClusterConfig
from gccluster.data.prepare import load_prepared
from gccluster.runtime import seed_everything

data = load_prepared(sys.argv[1])
for name, input_range in [("[0, 1]", "unit"), ("[-1, 1]", "symmetric")]:
    torch.manual_seed(0)
    result = method.train(TrainRequest(images=data.train.images, dataset="fashion_mnist", n_clusters=10,
                                       config=GATClusterConfig(iterations=int(sys.argv[2]), input_range=input_range),
                                       device=torch.device("cpu"), precision="fp32", generator=seed_everything(0)))
    print(name, {k: [round(v, 4) for v in result.curves[k]] for k in ("loss", "t", "r", "a", "balance")}, flush=True)

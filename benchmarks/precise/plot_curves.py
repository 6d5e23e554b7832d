"""The precise-feature method's label-free curves from a `baseline@precise` loss.csv: the
critic's Wasserstein estimate, C's mean predictive entropy and argmax balance on real train
images, C's accuracy on fresh fakes, and η (Eq. 8), against generator iterations.

    python benchmarks/precise/plot_curves.py LOSS_CSV OUT_PNG
"""

from __future__ import annotations

import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def main(loss_csv: str, out_png: str) -> None:
    rows = pd.read_csv(loss_csv)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    x = rows["iteration"]
    axes[0].plot(x, rows["wasserstein"])
    axes[0].set_title("critic's Wasserstein estimate (Eq. 5)")
    axes[1].plot(x, rows["real_entropy"], label="mean entropy of q(y|x)")
    axes[1].axhline(math.log(10), color="grey", linestyle=":", label="ln 10")
    axes[1].plot(x, rows["balance"], label="balance of argmax")
    axes[1].set_title("C on 1,000 real train images")
    axes[1].legend(fontsize=8)
    axes[2].plot(x, rows["fake_acc"])
    axes[2].set_title("C's accuracy on fresh fakes")
    axes[3].semilogy(x, rows["eta"])
    axes[3].set_title("η (Eq. 8)")
    for ax in axes:
        ax.set_xlabel("generator iterations")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

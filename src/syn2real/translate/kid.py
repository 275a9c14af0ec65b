"""Kernel Inception Distance (Bińkowski, Sutherland, Arbel and Gretton, "Demystifying MMD GANs", ICLR 2018):
the unbiased estimate of the squared MMD between two sets of image features under the cubic polynomial kernel
k(x, y) = (x·y / d + 1)^3, averaged over random subsets (their code: 100 subsets of 1000 images), reported as
mean ± standard deviation over the subsets. Unbiased, so a set against itself (or two sets from one
distribution) scores about 0 and may score below it.

The features come from a frozen ImageNet network (`translate.perceptual.FeatureNet`): EfficientNet-Lite0's
pooled 1280 values here, not Inception's 2048, so the numbers compare between sets scored here, not with
published KIDs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from syn2real.errors import DataError


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                      coef: float = 1.0) -> torch.Tensor:
    """(x y^T * gamma + coef)^degree with gamma = 1/d (the KID kernel)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD^2 estimate between feature sets x (m, d) and y (n, d): the within-set kernel means
    leave out the diagonal (i = j)."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise DataError(f"KID needs at least 2 images in each set, got {m} and {n}")
    x, y = x.double(), y.double()
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kid(x: torch.Tensor, y: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of `min(subset_size, m, n)` features of
    each set, drawn without replacement within a subset (Bińkowski et al.'s `polynomial_mmd_averages`)."""
    size = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        ix = torch.from_numpy(rng.choice(x.shape[0], size, replace=False))
        iy = torch.from_numpy(rng.choice(y.shape[0], size, replace=False))
        values.append(mmd2_unbiased(x[ix], y[iy]))
    mean = float(np.mean(values))
    std = float(np.std(values)) if len(values) > 1 else math.nan
    return mean, std

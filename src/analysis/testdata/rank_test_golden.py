"""Golden cases for src/analysis/rank_test.rs, from scipy.

    python3 -m pip install scipy==1.17.1 numpy
    python3 src/analysis/testdata/rank_test_golden.py > src/analysis/testdata/rank_test_golden.json

U and the p-value are scipy.stats.mannwhitneyu's (method "auto", continuity
on). scipy has no two-sample Hodges-Lehmann estimator: the shift is numpy's
median of the pairwise differences, and the interval Hollander and Wolfe's
order statistics with scipy's normal quantile, written here independently of
the Rust code.
"""
import json

import numpy as np
import scipy
from scipy import stats

CONFIDENCE = 0.95


def case(name, x, y, alternative):
    x, y = list(map(float, x)), list(map(float, y))
    result = stats.mannwhitneyu(x, y, alternative=alternative)
    n1, n2 = len(x), len(y)
    ties = len(set(x + y)) < n1 + n2
    exact = not (n1 > 8 and n2 > 8) and not ties
    differences = np.sort(np.subtract.outer(np.array(x), np.array(y)).ravel())
    z = stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    k = int(np.round(n1 * n2 / 2 - z * np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    interval = [float(differences[k - 1]), float(differences[n1 * n2 - k])] if k >= 1 else None
    return {
        "name": f"{name} ({alternative})",
        "x": x,
        "y": y,
        "alternative": alternative,
        "statistic": float(result.statistic),
        "pvalue": float(result.pvalue),
        "exact": exact,
        "shift": float(np.median(differences)),
        "interval": interval,
    }


def samples():
    rng = np.random.default_rng(20261203)
    yield "one each", [2], [1]
    yield "one against two", [0.5], [1, 2]
    yield "two against three", [3.1, 4.2], [1.0, 2.0, 5.0]
    yield "identical", [1, 2, 3, 4], [1, 2, 3, 4]
    yield "all tied", [7] * 10, [7] * 10
    yield "separated, exact", [10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6]
    yield "ties, small", [1, 2, 2, 3], [2, 3, 3, 4, 5]
    yield "ties, latency buckets", rng.choice([10, 20, 50, 100], 30).tolist(), rng.choice([10, 20, 50, 100], 25).tolist()
    yield "eight against forty", rng.normal(1.2, 1, 8).tolist(), rng.normal(1, 1, 40).tolist()
    yield "three against ninety", rng.normal(0, 1, 3).tolist(), rng.normal(0.5, 1, 90).tolist()
    yield "nine against nine", rng.normal(0, 1, 9).tolist(), rng.normal(0, 1, 9).tolist()
    yield "A/A, 60 each", rng.lognormal(0, 0.5, 60).tolist(), rng.lognormal(0, 0.5, 60).tolist()
    yield "A/B, 60 each, +30%", (1.3 * rng.lognormal(0, 0.5, 60)).tolist(), rng.lognormal(0, 0.5, 60).tolist()
    yield "rounded latencies", np.round(rng.gamma(2, 50, 45)).tolist(), np.round(rng.gamma(2, 55, 50)).tolist()
    yield "large, 400 against 350", rng.normal(0.05, 1, 400).tolist(), rng.normal(0, 1, 350).tolist()
    yield "negative values", (-rng.exponential(3, 12)).tolist(), (-rng.exponential(2, 7)).tolist()
    for size in range(1, 9):
        yield f"exact {size} against {size + 3}", rng.normal(0.8, 1, size).tolist(), rng.normal(0, 1, size + 3).tolist()


def main():
    cases = [case(name, x, y, alternative) for name, x, y in samples() for alternative in ("two-sided", "greater", "less")]
    print(json.dumps(cases, indent=1))


assert scipy.__version__ == "1.17.1", scipy.__version__
main()

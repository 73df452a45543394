"""The judge's fast tests give scipy.stats' p-values."""

import numpy as np
import pytest
from scipy import stats as sps

from stageflow.metrics.fasttests import binom_cdf, fisher_greater, mannwhitney_greater


@pytest.mark.parametrize("seed", range(40))
def test_fisher_greater_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    nc, ns = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
    kc, ks = int(rng.binomial(nc, rng.uniform(0, 0.1))), int(rng.binomial(ns, rng.uniform(0, 0.1)))
    want = sps.fisher_exact([[kc, nc - kc], [ks, ns - ks]], alternative="greater").pvalue
    assert fisher_greater(kc, nc, ks, ns) == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_fisher_greater_edges():
    for kc, nc, ks, ns in [(0, 10, 0, 10), (10, 10, 0, 10), (0, 5, 5, 5), (3, 3, 3, 3), (1, 1, 0, 1)]:
        want = sps.fisher_exact([[kc, nc - kc], [ks, ns - ks]], alternative="greater").pvalue
        assert fisher_greater(kc, nc, ks, ns) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_mannwhitney_greater_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n1, n2 = int(rng.integers(3, 40)), int(rng.integers(3, 40))
    x = np.round(rng.lognormal(5, 0.3, n1) * rng.uniform(1, 1.5), int(rng.integers(0, 3)))
    y = np.round(rng.lognormal(5, 0.3, n2), int(rng.integers(0, 3)))
    want = sps.mannwhitneyu(x, y, alternative="greater").pvalue
    assert mannwhitney_greater(list(x), list(y)) == pytest.approx(want, rel=1e-9)


def test_binom_cdf_matches_scipy():
    for k, n, p in [(0, 10, 0.1), (5, 100, 0.1), (99, 100, 0.5), (100, 100, 0.5), (-1, 5, 0.2)]:
        assert binom_cdf(k, n, p) == pytest.approx(sps.binom.cdf(k, n, p), rel=1e-9)


@pytest.mark.parametrize("seed", range(60))
def test_mannwhitney_exact_small_samples_match_scipy(seed):
    # scipy's "auto" uses the exact distribution when a sample has 8 or fewer values and nothing ties
    rng = np.random.default_rng(1000 + seed)
    n1, n2 = int(rng.integers(1, 9)), int(rng.integers(1, 30))
    if seed % 2:
        n1, n2 = n2, n1
    allv = rng.permutation(np.arange(n1 + n2) * 1.5 + rng.uniform(0, 1))
    x, y = allv[:n1] * (1 + seed % 3 * 0.1), allv[n1:]
    assert len(set(np.concatenate([x, y]))) == n1 + n2  # no ties: the exact branch
    want = sps.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue
    assert mannwhitney_greater(list(x), list(y)) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_the_judge_does_not_import_scipy_stats():
    # importing scipy.stats costs ~1.5 s CPU in every canary and rehearsal process (fasttests docstring)
    import subprocess
    import sys

    code = (
        "import sys, stageflow.metrics.judge, stageflow.metrics.changepoint; "
        "print('scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

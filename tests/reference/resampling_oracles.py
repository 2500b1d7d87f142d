"""Frozen R oracle values for :mod:`qdstats.resampling` (bootstrap intervals).

Tool: R 4.2.2 Patched (2022-11-10 r83330), boot 1.3-28.1.
Generator: ``tests/reference/r/resampling.R`` (``set.seed(20261123)``, ``R = 1e6`` resamples), e.g.
``boot.ci(boot(x, function(d, i) mean(d[i]), R = 1e6), conf = 0.95, type = c("perc", "basic", "bca"))``;
the cluster case uses cluster-level (sum, size) rows with statistic ``sum(S[i]) / sum(N[i])`` and
``boot.ci(..., L = empinf(b, type = "jack"))`` so that BCa uses the delete-one-cluster jackknife.

Both R and qdstats are Monte Carlo: compare with rtol 5e-3 (scipy's ``test_bootstrap_against_R``
tolerance). boot.ci interpolates order statistics on the normal scale; numpy uses linear quantiles:
the difference is far below that tolerance at these resample counts.
"""

from __future__ import annotations

X = (1.6664, 10.9943, 1.9272, 0.9316, 2.8826, 1.4253, 1.0076, 4.0629, 2.7138, 1.4304, 0.6277,
     1.4366, 1.4179, 3.2921, 1.8946, 4.0983, 2.1751, 2.3298, 2.2832, 1.1834, 0.5260, 1.6005,
     1.0921, 0.4846, 0.8970)

MEAN_X = {
    "t0": 2.1752400000,
    "percentile": (1.5206281000, 3.0928838000),
    "basic": (1.2575962000, 2.8298519000),
    "bca": (1.6424467173, 3.5553459845),
}

V = (1.1733, 0.1712, -0.0593, 3.4785, 2.0596, 1.2321, 1.3324, 1.3691, 0.8685, 1.5958, 2.5667,
     0.9839, 2.1768, 1.6512, 1.8002, 2.7334, 2.4944, 3.0999, 3.4022, 0.9623, 1.4781, 0.3034,
     -1.3753, 0.2001, -1.3073, 2.2678, 1.2329, 1.7194, 1.7531, 1.9865, 1.4387, 2.1129, 0.8253,
     0.4631, 1.4494, -1.2421, -2.1592, -0.1191, 1.5874, 2.0940, 1.4317, 1.3819, 1.3317, 0.5861,
     0.9163, -0.1771, 0.9608, 0.4426, 1.2185, 1.5586, 1.2399, 1.7333, 3.0179, 0.2834, 1.6712,
     0.9069, 2.2023, 1.1313, 1.6377, 1.5421, 2.5105)
CLUSTERS = (1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 8,
            8, 8, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 14, 14, 15, 15,
            15, 15, 15, 15, 15)

CLUSTER_MEAN = {
    "t0": 1.2676868852,
    "percentile": (0.7631270278, 1.6670323944),
    "basic": (0.8683413761, 1.7722467427),
    "bca": (0.7158166067, 1.6420924538),
}

"""Frozen lme4 oracle values for :func:`qdstats.within.mixed_slope`.

Tool: R 4.2.2 Patched (2022-11-10 r83330), lme4 1.1-31.
Generator: ``tests/reference/r/within.R`` on ``tests/reference/data/mixed_slope.csv`` and
``mixed_nested.csv`` (made by ``tests/reference/py/within_data.py``, seed 20261123). Calls:

* ``lmer(y ~ x + cov + (1 | language), data = d1, REML = TRUE)``        -> ``INTERCEPT``
* ``lmer(y ~ x + cov + (1 + x | language), data = d1, REML = TRUE)``    -> ``SLOPE``
* ``lmer(y ~ x + cov + (1 | language), data = d1, REML = FALSE)``       -> ``INTERCEPT_ML``
* ``lmer(y ~ x + (1 | language) + (1 | language:sentence), data = d2)`` -> ``NESTED``

``fe``: ``fixef``; ``se``: ``sqrt(diag(vcov(fit)))``; ``vc``: ``as.data.frame(VarCorr(fit))$vcov``;
``loglik``: ``logLik(fit)`` (REML criterion for REML fits). All fits: ``isSingular`` FALSE.
"""

from __future__ import annotations

INTERCEPT = {
    "fe": {"Intercept": 0.9501001415, "x": 0.4035561643, "cov": 0.2260088853},
    "se": {"Intercept": 0.2032651466, "x": 0.0517854393, "cov": 0.0556653241},
    "vc": {"group_var": 0.4596052900, "residual_var": 0.8807636823},
    "loglik": -425.6787539041,
}
SLOPE = {
    "fe": {"Intercept": 0.9697881528, "x": 0.4081248036, "cov": 0.2296845603},
    "se": {"Intercept": 0.2014645542, "x": 0.0925755583, "cov": 0.0536001873},
    "vc": {"group_var": 0.4513995960, "slope_var": 0.0723940584, "intercept_slope_cov": 0.0456630195,
           "residual_var": 0.8033360335},
    "loglik": -418.9709698599,
}
INTERCEPT_ML = {
    "fe": {"Intercept": 0.9502331455, "x": 0.4028953709, "cov": 0.2253632149},
    "se": {"Intercept": 0.1944428898, "x": 0.0515880959, "cov": 0.0554628719},
    "vc": {"group_var": 0.4177505475, "residual_var": 0.8747120505},
    "loglik": -420.9642618273,
}
NESTED = {
    "fe": {"Intercept": 1.0485045736, "x": 0.2916796860},
    "se": {"Intercept": 0.3030776013, "x": 0.0439243602},
    "vc": {"group_var": 0.7020853621, "sentence_var": 0.2651703326, "residual_var": 0.3833153221},
    "loglik": -338.4218046303,
}

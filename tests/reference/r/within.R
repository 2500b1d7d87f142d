# Generator for the lme4 oracle values in tests/reference/within_oracles.py
# Run from the repository root: Rscript tests/reference/r/within.R   (R 4.2.2, lme4 1.1-31)
# Data: tests/reference/data/mixed_slope.csv, mixed_nested.csv (made by tests/reference/py/within_data.py)
suppressPackageStartupMessages(library(lme4))
show <- function(label, fit) {
  fe <- fixef(fit); se <- sqrt(diag(as.matrix(vcov(fit))))
  cat(sprintf("== %s  REML=%s  logLik=%.10f singular=%s\n", label, isREML(fit), as.numeric(logLik(fit)),
              isSingular(fit)))
  for (k in names(fe)) cat(sprintf("FE %s %.10f SE %.10f\n", k, fe[[k]], se[[k]]))
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) cat(sprintf("VC %s %s %s %.10f\n", vc$grp[i], vc$var1[i], vc$var2[i], vc$vcov[i]))
}
d1 <- read.csv("tests/reference/data/mixed_slope.csv")
show("intercept", lmer(y ~ x + cov + (1 | language), data = d1, REML = TRUE))
show("slope", lmer(y ~ x + cov + (1 + x | language), data = d1, REML = TRUE))
show("intercept_ml", lmer(y ~ x + cov + (1 | language), data = d1, REML = FALSE))
d2 <- read.csv("tests/reference/data/mixed_nested.csv")
show("nested", lmer(y ~ x + (1 | language) + (1 | language:sentence), data = d2, REML = TRUE))

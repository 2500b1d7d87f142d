# Generator of tests/reference/correlation_oracles.py (frozen R oracle values for
# qdstats.correlation, qdstats.collinearity and qdstats.multiplicity).
#
# Run from the repository root:
#   Rscript tests/reference/r/correlation.R > tests/reference/correlation_oracles.py
#
# Needs base R (stats) and car. ppcor is not packaged for Debian, so its pcor.test / spcor.test
# formulas are written out by hand below (residualization with lm(), and the precision-matrix
# formula of ppcor 1.1 spcor()), and each "call" string says exactly what was computed.
# CI never needs R: the test-suite only reads the generated Python module.

suppressPackageStartupMessages(library(car))

num <- function(v) {
  s <- ifelse(is.na(v), "float('nan')",
              ifelse(is.infinite(v), ifelse(v > 0, "float('inf')", "float('-inf')"), sprintf("%.17g", v)))
  s
}
vec <- function(v) paste0("[", paste(num(v), collapse = ", "), "]")
out <- character(0)
emit <- function(...) out <<- c(out, paste0(...))

case <- function(name, call, values) {
  emit("    ", deparse(name), ": {")
  emit("        \"call\": ", deparse(call), ",")
  for (k in names(values)) {
    v <- values[[k]]
    if (length(v) == 1 && !is.character(v)) emit("        \"", k, "\": ", num(v), ",")
    else if (k %in% c("covar", "columns")) emit("        \"", k, "\": [", paste(sprintf("\"%s\"", v), collapse = ", "), "],")
    else if (is.character(v)) emit("        \"", k, "\": ", deparse(v), ",")
    else emit("        \"", k, "\": ", vec(v), ",")
  }
  emit("    },")
}

# ------------------------------------------------------------------ data
d1x <- c(10.702, 16.991, 11.187, 8.764, 12.529, 10.181, 9.025, 13.673, 12.328, 10.193, 7.448, 10.208,
         10.164, 12.972, 11.13, 13.702, 11.59, 11.819, 11.752, 9.561)
d1y <- c(4.065, 10.62, 6.182, 2.698, 6.496, 4.499, 1.313, 9.045, 7.59, 4.995, 5.948, 5.282, 6.318, 6.327,
         8.865, 9.527, 8.463, 9.004, 3.487, 6.693)
d2x <- c(1, 5, 2, 3, 1, 4, 2, 3, 3, 5, 1, 1, 1, 2, 4, 1, 1, 4, 2, 2, 2, 2, 2, 2, 5)
d2y <- c(1, 6, 1, 4, 1, 4, 1, 3, 5, 3, 3, 3, 1, 4, 2, 1, 1, 5, 2, 3, 2, 1, 2, 2, 6)
d3x <- c(1.1779, 1.6098, -1.8757, -1.1388, 2.3991, 0.001, 2.2515, 0.0981, 0.9006, -0.5777, 0.1172, 0.1653,
         0.4988, 0.8334, 1.7965, -0.0429, -1.6799, -0.271, 0.0556, -1.2545, 1.66, -0.2312, 0.4925, -0.4536,
         1.0768, 1.0051, -0.0601, 0.4117, -1.1503, -0.4238, -1.164, -0.0556, 0.4302, -0.025, 0.6798, 2.6872,
         -1.2193, 1.0026, -0.0893, 1.7612, 0.2313, 0.9547, 0.8181, 2.2015, -2.047, -0.0945, 1.1794, -0.383,
         0.7716, 0.6066, -0.4209, 0.4421, 0.432, 0.7911, -0.7276, -0.1875, 1.3051, -0.3919, -1.4145, 0.3761)
d3y <- c(-1.9727, 0.6982, 0.9985, -0.1557, -0.3698, -0.1716, 1.627, 1.9767, 1.1023, -2.0014, 1.4291, -0.9996,
         -0.3571, -0.0799, 1.3588, -0.6643, -0.2156, 0.8455, 1.0067, -1.1868, -0.5765, -0.468, 0.394, -0.6076,
         1.4262, 0.5468, 0.1068, -1.0784, -0.3436, -1.3107, -2.5181, -0.1118, -0.3235, -0.4556, -0.029, 2.529,
         -0.4351, 0.6363, 0.8245, 2.3142, 0.1467, 1.9952, 1.8738, -0.1115, 0.537, 0.8136, 0.7896, -1.8212,
         -0.4728, 2.8786, 0.3477, 0.9667, 0.8197, 1.1238, -0.313, -0.3591, 0.0235, 0.9785, -0.9114, -0.2819)
mt <- mtcars[, c("mpg", "cyl", "disp", "hp", "drat", "wt")]

# ------------------------------------------------------------------ header
emit('"""Frozen R oracle values for qdstats.correlation, qdstats.collinearity and qdstats.multiplicity.')
emit("")
emit("GENERATED FILE, do not edit by hand. Regenerate from the repository root with:")
emit("    Rscript tests/reference/r/correlation.R > tests/reference/correlation_oracles.py")
emit("")
emit("Tool: ", R.version.string, "; car ", as.character(packageVersion("car")), ".")
emit("Numbers are printed with sprintf('%.17g') (full double precision). Each case's 'call' is the exact R")
emit("expression evaluated. ppcor is not available, so partial and semi-partial values are computed by")
emit("residualization with lm() and the ppcor 1.1 formulas written out in the generator.")
emit("MTCARS is R's datasets::mtcars (Henderson & Velleman 1981), columns mpg, cyl, disp, hp, drat, wt.")
emit('"""')
emit("")
emit("D1_X = ", vec(d1x)); emit("D1_Y = ", vec(d1y))
emit("D2_X = ", vec(d2x)); emit("D2_Y = ", vec(d2y))
emit("D3_X = ", vec(d3x)); emit("D3_Y = ", vec(d3y))
emit("MTCARS = {")
for (cn in names(mt)) emit("    ", deparse(cn), ": ", vec(mt[[cn]]), ",")
emit("}")
emit("")

# ------------------------------------------------------------------ cor.test
emit("COR_TEST = {")
ct <- function(name, callstr) {
  r <- eval(parse(text = callstr))
  vals <- list(estimate = unname(r$estimate), pvalue = r$p.value, statistic = unname(r$statistic))
  if (!is.null(r$parameter)) vals$df <- unname(r$parameter)
  if (!is.null(r$conf.int)) { vals$ci_low <- r$conf.int[1]; vals$ci_high <- r$conf.int[2];
                              vals$ci_level <- attr(r$conf.int, "conf.level") }
  vals$n <- length(get(sub("x$", "x", strsplit(sub("cor.test\\(", "", callstr), ",")[[1]][1])))
  vals$alternative <- r$alternative
  case(name, callstr, vals)
}
ct("d1_pearson", 'cor.test(d1x, d1y, method = "pearson")')
ct("d1_pearson_less_90", 'cor.test(d1x, d1y, method = "pearson", alternative = "less", conf.level = 0.9)')
ct("d1_pearson_greater_90", 'cor.test(d1x, d1y, method = "pearson", alternative = "greater", conf.level = 0.9)')
ct("d1_spearman", 'cor.test(d1x, d1y, method = "spearman", exact = FALSE)')
ct("d1_spearman_greater", 'cor.test(d1x, d1y, method = "spearman", exact = FALSE, alternative = "greater")')
ct("d1_kendall", 'cor.test(d1x, d1y, method = "kendall")')
ct("d1_kendall_less", 'cor.test(d1x, d1y, method = "kendall", alternative = "less")')
ct("d2_pearson", 'cor.test(d2x, d2y, method = "pearson")')
ct("d2_spearman", 'cor.test(d2x, d2y, method = "spearman", exact = FALSE)')
ct("d2_kendall", 'cor.test(d2x, d2y, method = "kendall", exact = FALSE)')
ct("d3_pearson", 'cor.test(d3x, d3y, method = "pearson")')
ct("d3_spearman", 'cor.test(d3x, d3y, method = "spearman", exact = FALSE)')
ct("d3_kendall", 'cor.test(d3x, d3y, method = "kendall")')
emit("}")
emit("")

# ------------------------------------------------------------------ hand-coded rank CIs
emit("RANK_CI = {")
rho <- cor(d1x, d1y, method = "spearman"); n <- length(d1x); q <- qnorm(0.975)
se <- sqrt((1 + rho^2 / 2) / (n - 3))
case("d1_spearman_bonett_wright",
     "rho <- cor(d1x, d1y, method='spearman'); se <- sqrt((1 + rho^2/2)/(n - 3)); tanh(atanh(rho) + c(-1, 1) * qnorm(0.975) * se)",
     list(estimate = rho, se = se, ci_low = tanh(atanh(rho) - q * se), ci_high = tanh(atanh(rho) + q * se), n = n))
tau <- cor(d1x, d1y, method = "kendall"); se <- sqrt(0.437 / (n - 4))
case("d1_kendall_fieller",
     "tau <- cor(d1x, d1y, method='kendall'); se <- sqrt(0.437/(n - 4)); tanh(atanh(tau) + c(-1, 1) * qnorm(0.975) * se)",
     list(estimate = tau, se = se, ci_low = tanh(atanh(tau) - q * se), ci_high = tanh(atanh(tau) + q * se), n = n))
rho <- cor(d2x, d2y, method = "spearman"); n <- length(d2x); se <- sqrt((1 + rho^2 / 2) / (n - 3)); q90 <- qnorm(0.9)
case("d2_spearman_bonett_wright_greater_90",
     "rho <- cor(d2x, d2y, method='spearman'); se <- sqrt((1 + rho^2/2)/(n - 3)); c(tanh(atanh(rho) - qnorm(0.9) * se), 1)",
     list(estimate = rho, se = se, ci_low = tanh(atanh(rho) - q90 * se), ci_high = 1, n = n))
emit("}")
emit("")

# ------------------------------------------------------------------ partial / semi-partial
emit("PARTIAL = {")
pc <- function(name, x, y, covar, method = "pearson", alternative = "two.sided", level = 0.95) {
  d <- mt[, c(x, y, covar)]
  if (method == "spearman") d <- as.data.frame(lapply(d, rank))
  fz <- as.formula(paste("~", paste(covar, collapse = " + ")))
  rx <- resid(lm(update(fz, paste(x, "~ .")), data = d))
  ry <- resid(lm(update(fz, paste(y, "~ .")), data = d))
  r <- cor(rx, ry); n <- nrow(d); k <- length(covar); df <- n - 2 - k
  t <- r * sqrt(df / (1 - r^2))
  p <- switch(alternative, two.sided = 2 * pt(-abs(t), df), greater = pt(t, df, lower.tail = FALSE),
              less = pt(t, df))
  # same test as the coefficient of x in lm(y ~ x + covar)
  fit <- summary(lm(as.formula(paste(y, "~", x, "+", paste(covar, collapse = " + "))), data = d))
  p_lm <- fit$coefficients[x, "Pr(>|t|)"]
  se <- if (method == "spearman") sqrt((1 + r^2 / 2) / (n - k - 3)) else 1 / sqrt(n - k - 3)
  if (alternative == "two.sided") { qq <- qnorm(0.5 + level / 2); lo <- tanh(atanh(r) - qq * se); hi <- tanh(atanh(r) + qq * se) }
  else if (alternative == "greater") { lo <- tanh(atanh(r) - qnorm(level) * se); hi <- 1 }
  else { lo <- -1; hi <- tanh(atanh(r) + qnorm(level) * se) }
  # ppcor 1.1 pcor() precision-matrix formula, as a second route to the same estimate
  cvx <- cov(d); icvx <- solve(cvx); r_ppcor <- -cov2cor(icvx)[1, 2]
  callstr <- sprintf(paste0("d <- mtcars[, %s]%s; rx <- resid(lm(%s ~ %s, d)); ry <- resid(lm(%s ~ %s, d)); ",
                            "r <- cor(rx, ry); t <- r*sqrt(df/(1-r^2)), df = n-2-k; p (%s); ",
                            "p_lm <- summary(lm(%s ~ %s + %s, d))$coef['%s', 4]; CI tanh(atanh(r) -/+ q*se), se = %s"),
                     paste(deparse(c(x, y, covar)), collapse = ""),
                     if (method == "spearman") "; d <- as.data.frame(lapply(d, rank))" else "",
                     x, paste(covar, collapse = " + "), y, paste(covar, collapse = " + "), alternative,
                     y, x, paste(covar, collapse = " + "), x,
                     if (method == "spearman") "sqrt((1+r^2/2)/(n-k-3))" else "1/sqrt(n-k-3)")
  case(name, callstr, list(x = x, y = y, covar = covar, method = method, alternative = sub("two.sided", "two-sided", alternative),
                           level = level, estimate = r, estimate_ppcor_formula = r_ppcor, statistic = t, df = df,
                           pvalue = p, pvalue_lm = p_lm, ci_low = lo, ci_high = hi, n = n))
}
pc("mt_hp_mpg_wt", "hp", "mpg", c("wt"))
pc("mt_hp_mpg_wt_disp_drat", "hp", "mpg", c("wt", "disp", "drat"))
pc("mt_hp_mpg_wt_greater_90", "hp", "mpg", c("wt"), alternative = "greater", level = 0.9)
pc("mt_drat_mpg_wt_cyl_less", "drat", "mpg", c("wt", "cyl"), alternative = "less")
pc("mt_hp_mpg_wt_spearman", "hp", "mpg", c("wt"), method = "spearman")
pc("mt_disp_mpg_wt_cyl_spearman", "disp", "mpg", c("wt", "cyl"), method = "spearman")
emit("}")
emit("")

emit("SEMIPARTIAL = {")
spc <- function(name, x, y, covar, method = "pearson") {
  d <- mt[, c(x, y, covar)]
  if (method == "spearman") d <- as.data.frame(lapply(d, rank))
  fz <- paste(covar, collapse = " + ")
  rx <- resid(lm(as.formula(paste(x, "~", fz)), data = d))
  ry <- resid(lm(as.formula(paste(y, "~", fz)), data = d))
  sr_x <- cor(rx, d[[y]])    # x residualized, y raw
  sr_y <- cor(d[[x]], ry)    # y residualized, x raw
  n <- nrow(d); k <- length(covar); df <- n - 2 - k
  pr <- cor(rx, ry); t_pr <- pr * sqrt(df / (1 - pr^2)); p_pr <- 2 * pt(-abs(t_pr), df)
  t_x <- sr_x * sqrt(df / (1 - sr_x^2)); p_ppcor_x <- 2 * pt(-abs(t_x), df)
  t_y <- sr_y * sqrt(df / (1 - sr_y^2)); p_ppcor_y <- 2 * pt(-abs(t_y), df)
  fit <- summary(lm(as.formula(paste(y, "~", x, "+", fz)), data = d))
  # ppcor 1.1 spcor() formula on cbind(x, y, covar): element [1,2] and [2,1]
  cvx <- cov(d); icvx <- solve(cvx)
  sp <- -cov2cor(icvx) / sqrt(diag(cvx)) / sqrt(abs(diag(icvx) - t(t(icvx^2) / diag(icvx))))
  callstr <- sprintf(paste0("d <- mtcars[, %s]%s; sr_x <- cor(resid(lm(%s ~ %s, d)), d$%s); ",
                            "sr_y <- cor(d$%s, resid(lm(%s ~ %s, d))); p = 2*pt(-|t|, n-2-k) with t from the partial r; ",
                            "p_ppcor_* from t = sr*sqrt(df/(1-sr^2)); p_lm = summary(lm(%s ~ %s + %s, d))$coef['%s', 4]; ",
                            "spcor_12/21 = ppcor 1.1 spcor() formula on d"),
                     paste(deparse(c(x, y, covar)), collapse = ""),
                     if (method == "spearman") "; d <- as.data.frame(lapply(d, rank))" else "",
                     x, fz, y, x, y, fz, y, x, fz, x)
  case(name, callstr, list(x = x, y = y, covar = covar, method = method, sr_x = sr_x, sr_y = sr_y, partial_r = pr,
                           statistic = t_pr, df = df, pvalue = p_pr, pvalue_lm = fit$coefficients[x, "Pr(>|t|)"],
                           pvalue_ppcor_x = p_ppcor_x, pvalue_ppcor_y = p_ppcor_y,
                           spcor_12 = sp[1, 2], spcor_21 = sp[2, 1], n = n))
}
spc("mt_hp_mpg_wt", "hp", "mpg", c("wt"))
spc("mt_drat_mpg_wt_cyl", "drat", "mpg", c("wt", "cyl"))
spc("mt_hp_mpg_wt_spearman", "hp", "mpg", c("wt"), method = "spearman")
emit("}")
emit("")

# ------------------------------------------------------------------ VIF and condition number
emit("VIF = {")
vf <- function(name, formula_str, cols) {
  v <- car::vif(lm(as.formula(formula_str), data = mtcars))
  X <- cbind(1, as.matrix(mtcars[, cols]))
  Xs <- sweep(X, 2, sqrt(colSums(X^2)), "/")
  sv <- svd(Xs)$d
  ci <- max(sv) / sv
  R <- cor(mtcars[, cols])
  # the condition number of the scaled design without the intercept column (scale only, no centering)
  X0 <- as.matrix(mtcars[, cols]); X0s <- sweep(X0, 2, sqrt(colSums(X0^2)), "/")
  case(name, sprintf(paste0("car::vif(lm(%s, data = mtcars)); X <- cbind(1, as.matrix(mtcars[, %s])); ",
                            "Xs <- sweep(X, 2, sqrt(colSums(X^2)), '/'); kappa(Xs, exact = TRUE); d <- svd(Xs)$d; max(d)/d; ",
                            "diag(solve(cor(mtcars[, cols]))); kappa(scaled X without intercept, exact = TRUE)"),
                     formula_str, paste(deparse(cols), collapse = "")),
       list(columns = cols, vif = unname(v[cols]), vif_diag_inv_corr = unname(diag(solve(R))),
            condition_number = kappa(Xs, exact = TRUE), condition_indices = sort(ci),
            condition_number_no_intercept = kappa(X0s, exact = TRUE), n = nrow(mtcars)))
}
vf("mt_disp_hp_wt_drat", "mpg ~ disp + hp + wt + drat", c("disp", "hp", "wt", "drat"))
vf("mt_cyl_disp_hp_wt", "mpg ~ cyl + disp + hp + wt", c("cyl", "disp", "hp", "wt"))
emit("}")
emit("")

# ------------------------------------------------------------------ p.adjust
emit("P_ADJUST = {")
p1 <- c(0.01, 0.02, 0.03, 0.04, 0.05, 0.2, 0.5, 0.001, 0.9, 0.04)
p2 <- c(0.003, NA, 0.04, 0.012, NA, 0.5, 0.0001, 0.04)
p3 <- c(1e-12, 0.3, 0.049, 0.051, 1)
for (m in c("holm", "BH", "bonferroni")) {
  case(paste0("p1_", m), sprintf('p.adjust(c(%s), method = "%s")', paste(num(p1), collapse = ", "), m),
       list(p = p1, p_adjusted = p.adjust(p1, method = m), method = m))
  case(paste0("p2_", m), sprintf('p.adjust(c(%s), method = "%s")  # NA excluded from n', paste(ifelse(is.na(p2), "NA", num(p2)), collapse = ", "), m),
       list(p = p2, p_adjusted = p.adjust(p2, method = m), method = m))
  case(paste0("p3_", m), sprintf('p.adjust(c(%s), method = "%s")', paste(num(p3), collapse = ", "), m),
       list(p = p3, p_adjusted = p.adjust(p3, method = m), method = m))
}
emit("}")

cat(out, sep = "\n")
cat("\n")

# Generator for tests/reference/resampling_oracles.py
# Run: Rscript tests/reference/r/resampling.R   (R 4.2.2, boot 1.3-28.1)
# Prints the boot.ci bounds that are frozen (copied by hand) into resampling_oracles.py.
suppressPackageStartupMessages(library(boot))
set.seed(20261123)
B <- 1e6

x <- c(1.6664, 10.9943, 1.9272, 0.9316, 2.8826, 1.4253, 1.0076, 4.0629, 2.7138, 1.4304, 0.6277,
       1.4366, 1.4179, 3.2921, 1.8946, 4.0983, 2.1751, 2.3298, 2.2832, 1.1834, 0.5260, 1.6005,
       1.0921, 0.4846, 0.8970)
b_mean <- boot(x, function(d, i) mean(d[i]), R = B)
ci <- boot.ci(b_mean, conf = 0.95, type = c("perc", "basic", "bca"))
cat(sprintf("MEAN_X t0=%.10f\n", b_mean$t0))
cat(sprintf("MEAN_X perc  %.10f %.10f\n", ci$percent[4], ci$percent[5]))
cat(sprintf("MEAN_X basic %.10f %.10f\n", ci$basic[4], ci$basic[5]))
cat(sprintf("MEAN_X bca   %.10f %.10f\n", ci$bca[4], ci$bca[5]))

v <- c(1.1733, 0.1712, -0.0593, 3.4785, 2.0596, 1.2321, 1.3324, 1.3691, 0.8685, 1.5958, 2.5667,
       0.9839, 2.1768, 1.6512, 1.8002, 2.7334, 2.4944, 3.0999, 3.4022, 0.9623, 1.4781, 0.3034,
       -1.3753, 0.2001, -1.3073, 2.2678, 1.2329, 1.7194, 1.7531, 1.9865, 1.4387, 2.1129, 0.8253,
       0.4631, 1.4494, -1.2421, -2.1592, -0.1191, 1.5874, 2.0940, 1.4317, 1.3819, 1.3317, 0.5861,
       0.9163, -0.1771, 0.9608, 0.4426, 1.2185, 1.5586, 1.2399, 1.7333, 3.0179, 0.2834, 1.6712,
       0.9069, 2.2023, 1.1313, 1.6377, 1.5421, 2.5105)
cl <- c(1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 8,
        8, 8, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 14, 14, 15, 15,
        15, 15, 15, 15, 15)
# cluster-level data: sum and size per cluster; statistic = mean of all resampled observations
agg <- data.frame(S = tapply(v, cl, sum), N = as.numeric(table(cl)))
ratio <- function(d, i) sum(d$S[i]) / sum(d$N[i])
b_cl <- boot(agg, ratio, R = B)
L_jack <- empinf(b_cl, type = "jack")  # delete-one-cluster jackknife, as qdstats uses for BCa
ci2 <- boot.ci(b_cl, conf = 0.95, type = c("perc", "basic", "bca"), L = L_jack)
cat(sprintf("CLUSTER t0=%.10f\n", b_cl$t0))
cat(sprintf("CLUSTER perc  %.10f %.10f\n", ci2$percent[4], ci2$percent[5]))
cat(sprintf("CLUSTER basic %.10f %.10f\n", ci2$basic[4], ci2$basic[5]))
cat(sprintf("CLUSTER bca   %.10f %.10f\n", ci2$bca[4], ci2$bca[5]))

"""Benchmarks: noisy inputs, PSNR/SSIM over datasets, reports and figures."""

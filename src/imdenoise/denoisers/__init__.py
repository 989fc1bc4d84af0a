"""Every denoising method as a Denoiser, and the one catalogue that loads, lists and describes them."""

"""The introspective classifier (Jin et al. 2017): settings, sampler, training and comparisons."""

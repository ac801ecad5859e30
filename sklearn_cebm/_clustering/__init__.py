"""Clustering: GMMCEBMClusterer, GMMVAEClusterer, the neighbour graph and choosing n_clusters."""

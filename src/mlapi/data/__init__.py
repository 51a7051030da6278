"""Datasets: IMDb (fetch, verify, extract, load) and Iris."""

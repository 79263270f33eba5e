"""Benchmarks and the synthetic data they run on: the code behind the published figures.

Outside the serving package on purpose: nothing under matcher/api, service, store, embed or
index imports it, so a benchmark can fill a store in bulk or time a stage without the service
depending on it. The scripts in scripts/ are thin entry points over these modules.
"""

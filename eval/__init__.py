"""Measures: relevance against labeled pairs, with the benchmark protocol and reference baselines."""

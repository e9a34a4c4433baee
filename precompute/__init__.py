"""Precompute: train the aspect policies, evaluators and baselines, and sweep λ/ϕ into the grid table."""

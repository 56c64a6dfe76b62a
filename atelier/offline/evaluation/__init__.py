"""Offline evaluation: query sets with graded relevance, ranking metrics, the `atelier eval` report."""

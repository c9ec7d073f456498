"""Layer 5, analysis: statistics on counts, independent of any chapter's prose: APT tables and
intervals, trivial baselines, strong-match clusters and nulls, confidence, single filters.
"""

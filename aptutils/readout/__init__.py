"""Layer 4, readout: what a block predicts. Block features from one trunk pass, the readers (lens,
probe, the CNN's per-layer heads: readers.py), counting every block, and their store artifacts.
"""

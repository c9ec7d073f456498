"""Layer 6, reports: one module per chapter (ch1_pretraining … ch7_image_analogy) that builds the
chapter's tables, sentences and verdicts. Chapter N's verdicts are computed in chN_*.py.
"""

"""Layer 3, training: pre-training (Trainer), published models, held-out evaluation, the one
head-training loop (heads.py), fine-tuning, and the CNN's training.
"""

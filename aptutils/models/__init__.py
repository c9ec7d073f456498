"""Layer 2, models: BERT with its MLM head on modified positions only (bert.py), and chapter 7's
VGG-style CNN (vgg.py).
"""

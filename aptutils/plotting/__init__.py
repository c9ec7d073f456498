"""Layer 7, plotting: every figure of the book (figures.py; image_figures.py for chapter 7); a
figure function takes tables or report objects and returns a matplotlib Figure.
"""

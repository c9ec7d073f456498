"""Layer 1, data: the Wikipedia corpus and its samples (W_S pool, masked W_test), the tokenizer,
MLM masking, the fine-tuning tasks (FewRel, DBpedia-14) and chapter 7's images.
"""

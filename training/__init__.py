"""Training the starter model: corpus, tokenizer, model, evaluation."""

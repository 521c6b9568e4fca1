"""Med-MIM: medical multi-image question-answer pairs for four abilities."""

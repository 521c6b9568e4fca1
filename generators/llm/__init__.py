"""Language-model backends shared by every generator: offline and OpenAI-compatible."""

"""extractor: structured-output extraction service."""

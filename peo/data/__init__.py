"""Preference data: loaders for each source format, validation and prompt-disjoint splits."""

"""virtdeck's Textual themes."""

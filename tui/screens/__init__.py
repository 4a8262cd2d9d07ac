"""virtdeck's screens."""

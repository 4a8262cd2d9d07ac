"""virtdeck's widgets."""

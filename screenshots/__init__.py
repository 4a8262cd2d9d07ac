"""SVG screenshots of virtdeck, made by ``python -m screenshots``."""

"""The version of virtdeck's drivers and daemon."""

VERSION = "0.1.0"

"""Differential tests: the same scripted steps on libvirtd (virsh) and on virtdeck (its CLI
against its daemon), compared step by step (see scenario.py and docs/differential.md)."""

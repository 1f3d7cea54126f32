"""Selective triple modular redundancy: selection, map, annotations,
hardened RTL, area and proof by fault injection."""

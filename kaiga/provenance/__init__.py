"""Provenance: signed content credentials (C2PA) now; the invisible watermark and model cards to come."""

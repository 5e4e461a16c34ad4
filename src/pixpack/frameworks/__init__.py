"""Pieces of the framework adapters (:mod:`pixpack.tf`) that are not their entry points."""

__all__: list[str] = []

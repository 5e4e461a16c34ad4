"""pixpack: pack image datasets once, train on them at hardware speed."""
__version__ = "0.1.0"

"""One module per benchmarked family; each is run inside its own subprocess by run.py."""

"""The demonstration registry: the seed's three worked examples, played for real."""

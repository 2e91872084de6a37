"""The benchmark: generated runs at growing sizes (scale), timed against the floor and pandas (benchmark)."""

"""Traffic simulation: benign populations and extraction scenarios, with ground truth."""

"""psum.sweeps: accuracy against accumulator format, and the search for the minimum accumulator."""

"""psum.quant: quantisation-aware training, the true-integer program and the fake-to-true comparison."""

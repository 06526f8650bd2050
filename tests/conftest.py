"""Test-session settings shared by every test file."""

import os

# The RTL tests written for Icarus stay on Icarus where Verilator is installed too (psum's default
# then); tests/test_verilator.py names its simulator in every call.
os.environ.setdefault("PSUM_SIMULATOR", "icarus")

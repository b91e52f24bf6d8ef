"""Deviceless compiles for real TPUs and GPUs (see test_compile.py)."""

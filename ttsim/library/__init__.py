"""Ready-made kernels written against the low-level API: references for users, and the
programs that examples, tests and benchmarks run."""

"""okrsync's benchmark harness (issue #8): ``python -m benchmarks.run --sizes 100,1000,10000``."""

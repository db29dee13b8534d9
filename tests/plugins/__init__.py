"""Recalibration plugins the tests load through SRM_BENCH_PLUGINS, as a user's own module would be."""

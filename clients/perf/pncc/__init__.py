"""Benchmark and preview of the pnccrender rasterizer on the ICT face (they need the reenact
library, so they live here, not in the stand-alone pnccrender package)."""

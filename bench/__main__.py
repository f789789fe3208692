"""``python -m bench [--quick] [--output DIR]``: the benchmarks' one entry point."""

from bench.run import main

raise SystemExit(main())

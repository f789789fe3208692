"""``python -m bench [--quick] [--output DIR]``: the benchmarks' one entry point."""

from bench.run import main

# Caller processes are spawned: each imports this module again, as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())

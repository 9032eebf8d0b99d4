"""The chaos test (tests/chaos/chaos.py) at CI size: 40 jobs. `make chaos`
runs the full 500."""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(os.path.dirname(here), "chaos", "chaos.py")
sys.exit(subprocess.call([sys.executable, script, "--jobs", os.environ.get("CHAOS_JOBS", "40"),
                          "--rate", "4"]))

"""A user's script for warm starts: writes what it finds about the process it runs in.

    warm_probe.py [--exit N] [--kill SIGNAME] [--seed S]

probe.json in $GRIDRUN_RUN_DIR: whether `fractions` was imported before this script (the sweep
preloads it when warm), __name__, sys.argv, the working directory, session/group/pid, stdin,
sys.path[0] and a random draw; then one line on stdout and one on stderr.
"""
import sys

PRELOADED = "fractions" in sys.modules   # before anything below can import it

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--exit", type=int, default=0)
p.add_argument("--kill", default="")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
seen = {"preloaded": PRELOADED, "name": __name__, "argv": sys.argv, "cwd": os.getcwd(),
        "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
        "stdin": os.readlink("/proc/self/fd/0"), "path0": sys.path[0], "draw": random.random(),
        "run_id": os.environ.get("GRIDRUN_RUN_ID")}
with open(os.path.join(os.environ["GRIDRUN_RUN_DIR"], "probe.json"), "w") as f:
    json.dump(seen, f)
print("probe on stdout", flush=True)
print("probe on stderr", file=sys.stderr, flush=True)
if args.kill:
    os.kill(os.getpid(), getattr(signal, args.kill))
sys.exit(args.exit)

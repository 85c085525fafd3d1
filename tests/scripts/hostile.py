"""A run that writes what real runs sometimes write, for the daemon's fault-injection tests.
Standard library only. Each mode writes to $GRIDRUN_RUN_DIR (metrics.jsonl) or stdout:

    nested         metrics.jsonl rows with NaN/Infinity inside lists and dicts, a lone
                   surrogate, a line nested too deep to parse, garbage bytes
    rows N         N metrics.jsonl rows (epoch 1..N) as fast as it can; the last line has no
                   newline (the run is killed, or ends, mid-write)
    flood MB       per-step lines totalling about MB megabytes on stdout, then one epoch line
                   per epoch 1..3; the very last line without a newline
    rewrite        three rows in metrics.jsonl, then (once the daemon read them) the file
                   truncated and two different rows written from the start
    dirlog         its stdout.log removed and a folder made in its place (reading it fails),
                   then it sleeps: gridrun must end it, not wait for it
"""
import json
import os
import sys
import time

mode = sys.argv[1]
run_dir = os.environ.get("GRIDRUN_RUN_DIR", ".")
metrics = os.path.join(run_dir, "metrics.jsonl")


def append(raw: bytes) -> None:
    with open(metrics, "ab") as f:
        f.write(raw)


if mode == "nested":
    append(b'{"epoch": 1, "loss": 0.5, "per_class": [NaN, 0.5], "d": {"x": Infinity, '
           b'"y": [[-Infinity]]}, "note": "\\ud800 lone"}\n')
    append(b"[" * 100_000 + b"\n")          # json.loads: RecursionError
    append(b"\xff\xfe not json \x00\n")
    append(json.dumps({"epoch": 2, "loss": 0.25, "note": "ok"}).encode() + b"\n")
elif mode == "rows":
    count = int(sys.argv[2])
    with open(metrics, "ab") as f:
        for epoch in range(1, count + 1):
            end = b"\n" if epoch < count else b""
            f.write(json.dumps({"epoch": epoch, "loss": 1.0 / epoch}).encode() + end)
elif mode == "flood":
    target = float(sys.argv[2]) * 2**20
    written = 0
    out = sys.stdout
    step = 0
    for epoch in range(1, 4):
        while written < target * epoch / 3:
            step += 1
            line = f"epoch {epoch} step {step}: running mean of the batch loss is {1.0 / step:.6f}\n"
            out.write(line)
            written += len(line)
        end = "\n" if epoch < 3 else ""
        out.write(f"Epoch [{epoch}/3], Loss: {1.0 / epoch:.4f}, Accuracy: {50 + epoch:.2f}%{end}")
    out.flush()
elif mode == "rewrite":
    for epoch in (1, 2, 3):
        append(json.dumps({"epoch": epoch, "loss": 9.0}).encode() + b"\n")
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 1.5)
    with open(metrics, "wb") as f:                   # truncated: a new history
        for epoch in (1, 2):
            f.write(json.dumps({"epoch": epoch, "loss": 1.0 / epoch}).encode() + b"\n")
elif mode == "dirlog":
    print("about to break my own log", flush=True)
    log = os.path.join(run_dir, "stdout.log")
    os.remove(log)
    os.mkdir(log)
    time.sleep(120)
else:
    sys.exit(f"unknown mode {mode}")

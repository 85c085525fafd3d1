"""A stand-in training script for the engine's tests: standard library only, starts fast.

It behaves like the scripts users bring, and can misbehave on request:

    --epochs N --sleep S      N epochs of S seconds, one printed line each (the seeds' format)
    --report                  report through engine.report instead of printing
    --checkpoint              save {epoch} to $GRIDRUN_RUN_DIR/ckpt.json each epoch; resume from it
    --fail-at K               exit 3 at epoch K, after a traceback-like line
    --garbage                 print binary noise and non-metric text as well
    --child                   start a grandchild that sleeps (must die with the run's group)
    --ignore-term             ignore SIGTERM (the daemon must SIGKILL after the grace period)
    --nan-at K                report/print a NaN loss at epoch K
    --marker FILE             append "start <pid> <attempt>" to FILE when it starts
    --oom-first               on its first attempt, fail as PyTorch does when the GPU is full
    --stuck                   a loss that never leaves ln(10), at chance accuracy
    --when LR,SEED,WHAT,K     misbehave only in the run with this lr and seed (SEED * for any):
                              WHAT is fail (exit 3 at epoch K), hang (sleep at epoch K until
                              stopped), stop (exit 0 before epoch K) or nan (NaN loss at K);
                              so one configuration's seeds can end differently
    --chance-for K            a slow starter: at ln(10) and chance accuracy for K epochs, then
                              learning as usual
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--report", action="store_true")
p.add_argument("--checkpoint", action="store_true")
p.add_argument("--fail-at", type=int, default=0)
p.add_argument("--garbage", action="store_true")
p.add_argument("--child", action="store_true")
p.add_argument("--ignore-term", action="store_true")
p.add_argument("--nan-at", type=int, default=0)
p.add_argument("--marker", default="")
p.add_argument("--oom-first", action="store_true")
p.add_argument("--stuck", action="store_true")
p.add_argument("--chance-for", type=int, default=0)
p.add_argument("--when", action="append", default=[])
args = p.parse_args()
for rule in args.when:
    lr, seed, what, at = rule.split(",")
    if float(lr) == args.lr and seed in ("*", str(args.seed)):
        if what == "fail":
            args.fail_at = int(at)
        elif what == "nan":
            args.nan_at = int(at)
        elif what == "stop":
            args.epochs = int(at) - 1
        elif what == "hang":
            args.hang_at = int(at)

run_dir = os.environ.get("GRIDRUN_RUN_DIR", ".")
if args.marker:
    with open(args.marker, "a") as f:
        f.write(f"start {os.getpid()} {os.environ.get('GRIDRUN_ATTEMPT')}\n")
if args.ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if args.child:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(os.path.join(run_dir, "child.pid"), "w") as f:
        f.write(str(child.pid))

start = 1
ckpt = os.path.join(run_dir, "ckpt.json")
if args.checkpoint and os.path.exists(ckpt):
    with open(ckpt) as f:
        start = json.load(f)["epoch"] + 1
    print(f"resumed at epoch {start}", flush=True)

for epoch in range(start, args.epochs + 1):
    time.sleep(args.sleep)
    if getattr(args, "hang_at", 0) == epoch:
        time.sleep(600)
    if args.fail_at == epoch:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: simulated failure at epoch", epoch, file=sys.stderr, flush=True)
        sys.exit(3)
    # deterministic in (lr, seed, epoch): results can be checked against a hand computation
    loss = round(1.0 / (epoch * (1 + args.lr * 10)) + args.seed * 0.001, 6)
    acc = round(min(99.0, 50 + epoch * 10 * (1 + args.lr)) - args.seed * 0.1, 4)
    if args.oom_first and os.environ.get("GRIDRUN_ATTEMPT") == "1":
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
              file=sys.stderr, flush=True)
        sys.exit(1)
    if args.stuck or epoch <= args.chance_for:
        loss, acc = 2.302585 + 0.0003 * (epoch % 2) + 0.0001 * args.seed, 10.0
    if args.nan_at == epoch:
        loss = float("nan")
    if args.garbage:
        sys.stdout.buffer.write(b"\x00\xff\xfe garbage \x1b[31m red \x1b[0m 3.2.1 v1.2\n")
        print("Downloading weights 100%", flush=True)
    if args.report:
        from gridrun.engine.report import report
        report(epoch=epoch, epochs=args.epochs, train_loss=loss, val_acc=acc / 100, lr=args.lr)
    else:
        print(f"Epoch [{epoch}/{args.epochs}], Loss: {loss:.6f}, LR: {args.lr:.6f}, "
              f"Accuracy: {acc:.2f}%", flush=True)
    if args.checkpoint:
        with open(ckpt + ".tmp", "w") as f:
            json.dump({"epoch": epoch}, f)
        os.replace(ckpt + ".tmp", ckpt)
print("finished", flush=True)

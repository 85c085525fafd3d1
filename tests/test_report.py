"""engine.report: report() -> metrics.jsonl, and printed output -> metrics (parse_line, OutputParser)."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gridrun.engine.report import OutputParser, parse_line, read_metrics, report

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = Path(__file__).resolve().parent / "data" / "outputs"


# ---------------------------------------------------------------------------------------------
# parse_line: one printed line -> metrics
# ---------------------------------------------------------------------------------------------

LINES = [
    # the DESIGN.md example and plain pairs
    ("Epoch [3/15], Loss: 0.3206, LR: 0.010000, Accuracy: 90.91%",
     {"epoch": 3, "epochs": 15, "loss": 0.3206, "lr": 0.01, "accuracy": 90.91}),
    ("epoch: 3, loss: 0.31, acc: 0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("epoch=3 loss=0.31 acc=0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("epoch 3 loss 0.31 acc 0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("Epoch 3 | loss 0.31 | acc 0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("epoch 3; loss = 0.31; acc = 0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("Epoch 3 - loss: 0.31 - acc: 0.9", {"epoch": 3, "loss": 0.31, "acc": 0.9}),
    ("epoch\t3\tloss\t0.31", {"epoch": 3, "loss": 0.31}),
    ("Epoch 001: loss=0.5", {"epoch": 1, "loss": 0.5}),
    ("Step: 500, Loss: 1.234, Perplexity: 3.43", {"step": 500, "loss": 1.234, "perplexity": 3.43}),
    ("Iteration 100: loss = 0.5", {"iteration": 100, "loss": 0.5}),
    ("Epoch 2 Step 300 lr=1.0e-04 loss=0.2 grad_norm=1.5",
     {"epoch": 2, "step": 300, "lr": 1e-4, "loss": 0.2, "grad_norm": 1.5}),
    ("lr: 1e-3, wd: 5e-4", {"lr": 0.001, "wd": 0.0005}),
    ("loss: -0.5 score -12 acc 4.5e-05", {"loss": -0.5, "score": -12, "acc": 4.5e-05}),
    ("Loss: 6.9078e+00", {"loss": 6.9078}),
    # multi-word names
    ("Training Loss: 0.5", {"training_loss": 0.5}),
    ("Epoch 3 | Train Loss: 0.3 | Train Acc: 80.00% | Val Loss: 0.4 | Val Acc: 85.00%",
     {"epoch": 3, "train_loss": 0.3, "train_acc": 80.0, "val_loss": 0.4, "val_acc": 85.0}),
    ("Learning rate: 0.001", {"learning_rate": 0.001}),
    ("top-1 acc: 76.1 top5 93.0", {"top_1_acc": 76.1, "top5": 93.0}),
    ("Best val acc: 0.95 at epoch 12", {"best_val_acc": 0.95}),
    # fractions and percentages
    ("Accuracy: 9000/10000 (90%)", {"accuracy": 90.0}),
    ("Accuracy: 90%", {"accuracy": 90}),
    ("Accuracy: 90.5 %", {"accuracy": 90.5}),
    ("Epoch 3/15", {"epoch": 3, "epochs": 15}),
    ("step 100/1000 loss 2.3", {"step": 100, "steps": 1000, "loss": 2.3}),
    ("Epoch [1/10], Step [100/600], Loss: 0.2",
     {"epoch": 1, "epochs": 10, "step": 100, "steps": 600, "loss": 0.2}),
    # test / validation prefixes
    ("Test set: Average loss: 0.0274, Accuracy: 9912/10000 (99%)",
     {"test_loss": 0.0274, "test_accuracy": 99.12}),
    ("Validation Loss: 0.31, Validation Accuracy: 0.91", {"val_loss": 0.31, "val_accuracy": 0.91}),
    ("Valid loss: 0.4 Valid acc: 0.85", {"val_loss": 0.4, "val_acc": 0.85}),
    ("Eval: accuracy=0.9 f1=0.85", {"val_accuracy": 0.9, "val_f1": 0.85}),
    ("[Val] loss: 0.4 acc: 0.9", {"val_loss": 0.4, "val_acc": 0.9}),
    ("epoch 1: train_loss 0.5 | eval: acc 0.8 loss 0.3",
     {"epoch": 1, "train_loss": 0.5, "val_acc": 0.8, "val_loss": 0.3}),
    ("train loss 0.5 acc 0.8 val loss 0.4 acc 0.85",
     {"train_loss": 0.5, "acc": 0.8, "val_loss": 0.4, "val_acc": 0.85}),
    ("Test: epoch 3 step 10 lr 0.1 loss 0.2",
     {"epoch": 3, "step": 10, "lr": 0.1, "test_loss": 0.2}),
    ("Validation: val_loss=0.3 test_acc=0.9", {"val_loss": 0.3, "test_acc": 0.9}),
    ("Test Accuracy of the model: 97.5 %", {"test_accuracy": 97.5}),
    # dict-like and JSON lines (HuggingFace Trainer, json.dumps)
    ("{'loss': 0.5432, 'grad_norm': 1.2, 'learning_rate': 4.5e-05, 'epoch': 0.5}",
     {"loss": 0.5432, "grad_norm": 1.2, "learning_rate": 4.5e-05, "epoch": 0.5}),
    ("{'eval_loss': 0.3, 'eval_accuracy': 0.9, 'eval_runtime': 1.5, 'epoch': 1.0}",
     {"eval_loss": 0.3, "eval_accuracy": 0.9, "eval_runtime": 1.5, "epoch": 1.0}),
    ('{"epoch": 1, "loss": 0.3, "tag": "x", "ok": true, "nested": {"acc": 0.9}}',
     {"epoch": 1, "loss": 0.3, "acc": 0.9}),
    ("{'loss': tensor(0.5000, device='cuda:0'), 'acc': np.float64(0.9), 'n': 3}",
     {"loss": 0.5, "acc": 0.9, "n": 3}),
    ("Epoch 3: {'loss': 0.3}", {"epoch": 3, "loss": 0.3}),
    # progress bars
    ("Epoch 1:  50%|█████     | 50/100 [00:01<00:01, 45.2it/s, loss=0.312, acc=0.9]",
     {"epoch": 1, "loss": 0.312, "acc": 0.9}),
    ("Epoch 1:  50%|#####     | 50/100 [00:01<00:01,  1.52s/it, loss=0.312]",
     {"epoch": 1, "loss": 0.312}),
    ("Epoch 0: 100%|██████████| 1875/1875 [00:10<00:00, 180.00it/s, v_num=0, train_loss=0.123, "
     "val_loss=0.1, val_acc=0.95]",
     {"epoch": 0, "train_loss": 0.123, "val_loss": 0.1, "val_acc": 0.95}),
    ("Epoch 0/4  ━━━━━━━━━━━━━━━━ 1875/1875 0:00:10 • 0:00:00 180.00it/s v_num: 0 train_loss: 0.123",
     {"epoch": 0, "epochs": 4, "train_loss": 0.123}),
    (" 10%|█         | 50/500 [00:10<01:30,  5.00it/s]", {}),
    ("Validation DataLoader 0:  50%|█████     | 10/20 [00:00<00:00, 50.00it/s]", {}),
    ("Sanity Checking DataLoader 0: 100%|██████████| 2/2 [00:00<00:00, 80.00it/s]", {}),
    ("50it [00:01, 45.21it/s, loss=0.3]", {"loss": 0.3}),
    ("1875/1875 [==============================] - 3s 2ms/step - loss: 0.2950 - accuracy: 0.9150 "
     "- val_loss: 0.1400 - val_accuracy: 0.9580",
     {"loss": 0.295, "accuracy": 0.915, "val_loss": 0.14, "val_accuracy": 0.958}),
    (" 938/1875 [==============>...............] - ETA: 1s - loss: 0.3921 - accuracy: 0.8873",
     {"loss": 0.3921, "accuracy": 0.8873}),
    ("1875/1875 ━━━━━━━━━━━━━━━━━━━━ 3s 2ms/step - accuracy: 0.9150 - loss: 0.2950",
     {"accuracy": 0.915, "loss": 0.295}),
    ("1875/1875 - 3s - 2ms/step - loss: 0.2950 - accuracy: 0.9150",
     {"loss": 0.295, "accuracy": 0.915}),
    ("Epoch 1/5", {"epoch": 1, "epochs": 5}),
    (" [====>....]  Step: 52ms | Tot: 3s | Loss: 1.234 | Acc: 55.123% (5000/9088)",
     {"tot": 3, "loss": 1.234, "acc": 55.123}),
    # what the PyTorch examples print
    ("Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.558217", {"epoch": 1, "loss": 0.558217}),
    ("[1,  2000] loss: 2.180", {"epoch": 1, "step": 2000, "loss": 2.18}),
    ("Accuracy of the network on the 10000 test images: 54 %", {"test_accuracy": 54}),
    ("Accuracy for class: plane is 57.2 %", {"accuracy_plane": 57.2}),
    ("Accuracy of plane : 60 %", {"accuracy_plane": 60}),
    ("| epoch   3 |   200/ 2983 batches | lr 20.00 | ms/batch 45.23 | loss  5.20 | ppl   181.27",
     {"epoch": 3, "lr": 20.0, "ms_batch": 45.23, "loss": 5.2, "ppl": 181.27}),
    ("| end of epoch   3 | time: 10.53s | valid loss  5.10 | valid ppl   164.30",
     {"epoch": 3, "time": 10.53, "val_loss": 5.1, "val_ppl": 164.3}),
    ("Epoch: [0][  10/5005]\tTime  0.343 ( 0.652)\tData  0.000 ( 0.231)\tLoss 6.9078e+00 "
     "(6.9123e+00)\tAcc@1   0.00 (  0.10)\tAcc@5   0.39 (  0.55)",
     {"epoch": 0, "time": 0.343, "data": 0.0, "loss": 6.9078, "acc_1": 0.0, "acc_5": 0.39}),
    ("Test: [ 0/196]\tTime  0.670 ( 0.670)\tLoss 8.6702e-01 (8.6702e-01)\tAcc@1  83.59 ( 83.59)",
     {"test_time": 0.67, "test_loss": 0.86702, "test_acc_1": 83.59}),
    ("[0/25][0/1583] Loss_D: 1.8 Loss_G: 4.2 D(x): 0.5 D(G(z)): 0.4 / 0.01",
     {"epoch": 0, "epochs": 25, "step": 0, "steps": 1583, "loss_d": 1.8, "loss_g": 4.2}),
    ("====> Epoch: 1 Average loss: 164.3", {"epoch": 1, "loss": 164.3}),
    ("====> Test set loss: 127.5", {"test_loss": 127.5}),
    # timm
    ("Train: 0 [   0/1251 (  0%)]  Loss: 6.932 (6.93)  Time: 3.215s,   79.63/s  "
     "(3.215s,   79.63/s)  LR: 1.000e-06  Data: 2.505 (2.505)",
     {"epoch": 0, "loss": 6.932, "time": 3.215, "lr": 1e-06, "data": 2.505}),
    ("Test: [  48/48]  Time: 0.5 (0.6)  Loss:  0.9 (0.9)  Acc@1: 80.0 (79.5)  Acc@5: 95.0 (94.5)",
     {"test_time": 0.5, "test_loss": 0.9, "test_acc_1": 80.0, "test_acc_5": 95.0}),
    # tables: a two-column row (Lightning's test table, markdown)
    ("│         test_acc          │    0.9812000393867493     │", {"test_acc": 0.9812000393867493}),
    ("| val loss | 0.5 |", {"val_loss": 0.5}),
    # HF Trainer's final metrics block
    ("  epoch                    =        3.0", {"epoch": 3.0}),
    ("  train_loss               =     0.4523", {"train_loss": 0.4523}),
    ("  train_runtime            = 0:01:23.45", {}),
    # logging prefixes
    ("2024-05-01 12:00:03,123 - INFO - Epoch 3: loss=0.31", {"epoch": 3, "loss": 0.31}),
    ("2024-05-01T12:00:03.123Z epoch 3 loss 0.31", {"epoch": 3, "loss": 0.31}),
    ("INFO:root:epoch 3 loss 0.31", {"epoch": 3, "loss": 0.31}),
    ("INFO:__main__:Epoch 3 val_acc=0.9", {"epoch": 3, "val_acc": 0.9}),
    ("[12:00:03] epoch 3 loss 0.31", {"epoch": 3, "loss": 0.31}),
    ("[2024-05-01 12:00:03] [INFO] epoch 3 loss 0.31", {"epoch": 3, "loss": 0.31}),
    ("2024-05-01 12:00:03.123 | INFO     | __main__:main:42 - Epoch 3 loss=0.31",
     {"epoch": 3, "loss": 0.31}),
    ("I0501 12:00:03.123456 140000 train.py:42] loss 0.3", {"loss": 0.3}),
    ("\x1b[32mEpoch 3\x1b[0m loss=\x1b[1m0.31\x1b[0m", {"epoch": 3, "loss": 0.31}),
    # durations
    ("Epoch 3 took 12.5s", {"epoch": 3, "time": 12.5}),
    ("Epoch 3 finished in 250ms", {"epoch": 3, "time": 0.25}),
    ("Epoch time: 1.5 min", {"epoch_time": 1.5}),
    ("epoch_time: 2min", {"epoch_time": 120}),
    ("Epoch 3/10: loss 0.5 time 12.5s eta 3m", {"epoch": 3, "epochs": 10, "loss": 0.5, "time": 12.5}),
    # not metrics
    ("torch.Size([64, 1, 28, 28])", {}),
    ("Downloading 100%", {}),
    ("Downloading https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", {}),
    ("Extracting ./data/MNIST/raw/train-images-idx3-ubyte.gz to ./data/MNIST/raw", {}),
    ("100.0%", {}),
    ("Python 3.11.4 (main, Jun  7 2023, 12:45:48) [GCC 11.3.0]", {}),
    ("torch 2.1.0+cu118", {}),
    ("/home/user/data/mnist/28x28/file_3.pt", {}),
    ("Saved checkpoint to /tmp/runs/exp-3/ckpt_epoch_3.pt", {}),
    ("Using device: cuda:0", {}),
    ("LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]", {}),
    ("[rank: 0] Seed set to 42", {}),
    ("Found 50000 images belonging to 10 classes.", {}),
    ("Namespace(batch_size=64, epochs=14, lr=1.0, gamma=0.7)", {}),
    ("Memory: 3.2GB, 1.2M params", {}),
    ('  File "/home/u/train.py", line 42, in <module>', {}),
    ("/usr/lib/python3.11/site-packages/torch/utils/data.py:557: UserWarning: 4 workers", {}),
    ("Files already downloaded and verified", {}),
    ("", {}),
    ("RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total "
     "capacity; 6.5 GiB already allocated; 10.56 MiB free; 6.6 GiB reserved in total by PyTorch)", {}),
    ("UserWarning: This DataLoader will create 8 worker processes in total. Our suggested max "
     "number of worker in current system is 2, which is smaller than what this DataLoader is "
     "going to create.", {}),
    ("Loaded 60000 train images", {}),
    ("Model has 11.2 M parameters", {}),
    ("100%|██████████| 44.7M/44.7M [00:00<00:00, 123MB/s]", {}),
    ("  (fc1): Linear(in_features=784, out_features=128, bias=True)", {}),
    ("BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)", {}),
    ("Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)", {}),
    ("Epoch 00005: reducing learning rate of group 0 to 1.0000e-04.", {"epoch": 5}),
    ("Restoring model weights from the end of the best epoch: 5.", {"best_epoch": 5}),
    ("Epoch 3 done", {"epoch": 3}),
    # more of what people print
    ("TrainOutput(global_step=750, training_loss=0.5527, metrics={'train_runtime': 101.2, "
     "'train_loss': 0.5527, 'epoch': 1.0})",
     {"train_runtime": 101.2, "train_loss": 0.5527, "epoch": 1.0}),
    ("[Epoch 3/15] [Batch 100/938] [D loss: 0.5] [G loss: 0.7]",
     {"epoch": 3, "epochs": 15, "batch": 100, "batches": 938, "d_loss": 0.5, "g_loss": 0.7}),
    ("[3/15] loss: 0.3", {"epoch": 3, "epochs": 15, "loss": 0.3}),
    ("[0]\tvalidation_0-logloss:0.66115\tvalidation_1-logloss:0.66320",
     {"step": 0, "validation_0_logloss": 0.66115, "validation_1_logloss": 0.6632}),
    ("wandb:   train_loss 0.123", {"train_loss": 0.123}),
    ("mAP@0.5: 0.65", {"map_0_5": 0.65}),
    ("Epoch 1 of 10, loss 0.5", {"epoch": 1, "loss": 0.5}),
    ("Accuracy: 0.95 ± 0.01", {"accuracy": 0.95}),
    ("Total params: 101,770 (397.54 KB)", {"total_params": 101770}),
    # Hugging Face Trainer (recent versions) quotes the numbers of its dicts
    ("{'eval_loss': '0.4127', 'eval_accuracy': '0.8542', 'epoch': '2'}",
     {"eval_loss": 0.4127, "eval_accuracy": 0.8542, "epoch": 2}),
    ('{"loss": "0.5", "tag": "v2", "note": "3 epochs", "lr": "1e-4"}', {"loss": 0.5, "lr": 1e-4}),
    # a problem reported is not a metric line, whatever numbers its message quotes
    ("ValueError: learning rate 1.5 too large: diverged", {}),
    ("error: vit.width = 30 is not a multiple of vit.heads = 4", {}),
    ("Error: width = 30 is not a multiple of heads = 4", {}),
    ("warning: lr = 0.5 is large", {}),
    ("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", {}),
    ("AssertionError: loss 0.5 > 0.3", {}),
    ("Assertion failed: epoch 3 < 2", {}),
    ("Traceback (most recent call last): epoch 3", {}),
    ('  File "<string>", line 3, in <module>', {}),
    ("    raise ValueError(f'learning rate {lr} = 1.5 too large')", {}),
    ("    assert acc > 0.5, acc", {}),
    ("2024-05-01 12:00:03,123 - ERROR - loss=nan at step 300", {}),
    ("ERROR:root:lr 1.5 diverged at epoch 3", {}),
    ("[rank0]: RuntimeError: loss 0.5 is nan at epoch 3", {}),
    ("/home/u/train.py:12: RuntimeWarning: overflow 1e308 in exp", {}),
    ("Exception in thread Thread-3 after 12 steps", {}),
    ("\x1b[31mKeyError\x1b[0m: 'lr' 3", {}),
    # ... while a metric named like a problem is still a metric
    ("Error: 0.23", {"error": 0.23}),
    ("Test Error: 0.23, Val Error: 0.3", {"test_error": 0.23, "val_error": 0.3}),
    ("top-1 error 23.5 top-5 error 6.7", {"top_1_error": 23.5, "top_5_error": 6.7}),
    ("train error rate: 0.1", {"train_error_rate": 0.1}),
    ("failed: 3 passed: 10", {"failed": 3, "passed": 10}),
    ("2024-05-01 12:00:03,123 - INFO - epoch 3 val_error=0.1", {"epoch": 3, "val_error": 0.1}),
]


@pytest.mark.parametrize(("line", "expected"), LINES, ids=[f"{i:03d}" for i in range(len(LINES))])
def test_parse_line(line, expected):
    got = parse_line(line)
    assert got == expected
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}


def test_ints_stay_ints_and_floats_stay_floats():
    got = parse_line("Epoch [3/15], Loss: 0.3206, LR: 0.010000, Accuracy: 90.91%")
    assert {k: type(v) for k, v in got.items()} == {
        "epoch": int, "epochs": int, "loss": float, "lr": float, "accuracy": float}
    assert type(parse_line("Accuracy: 9000/10000 (90%)")["accuracy"]) is float
    assert type(parse_line("{'epoch': 0.5}")["epoch"]) is float
    assert type(parse_line("{'epoch': 2}")["epoch"]) is int


def test_fraction_is_more_precise_than_the_rounded_percent():
    assert parse_line("Test set: Average loss: 0.0274, Accuracy: 9912/10000 (99%)")[
        "test_accuracy"] == 99.12
    assert parse_line("Accuracy: 1/3 (33%)")["accuracy"] == pytest.approx(33.333333333)


@pytest.mark.parametrize(("line", "name", "sign"), [
    ("loss: nan", "loss", 0),
    ("loss=NaN acc=0.1", "loss", 0),
    ("Epoch 3: 100%|##########| 100/100 [00:01<00:00, 99.0it/s, loss=nan]", "loss", 0),
    ("grad_norm: inf", "grad_norm", 1),
    ("loss -inf", "loss", -1),
    ("{'loss': nan, 'epoch': 1.0}", "loss", 0),
    ('{"loss": NaN}', "loss", 0),
    ('{"loss": -Infinity}', "loss", -1),
])
def test_nonfinite_values(line, name, sign):
    value = parse_line(line)[name]
    assert isinstance(value, float)
    if sign == 0:
        assert math.isnan(value)
    else:
        assert value == sign * math.inf


def test_no_metric_name_starts_with_anything_but_a_letter():
    noisy = [
        "2024-05-01 12:00:03,123 - INFO - started", "12:00:03 99", "[2024] 7", "3 2 1 go",
        "1875/1875", "(0.5)", "_x 3", "@foo 3", "v1.2.3", "#5 7",
    ]
    for line in noisy:
        for name in parse_line(line):
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), (line, name)


def test_parse_line_accepts_pattern_strings_too():
    assert parse_line("top1 93.5", [r"top1 (?P<val_acc>[0-9.]+)"]) == {"top1": 93.5, "val_acc": 93.5}


def test_user_patterns_take_precedence():
    pats = [re.compile(r"top1 (?P<val_acc>[0-9.]+)"), re.compile(r"loss (?P<loss>\S+)")]
    assert parse_line("step 3 top1 93.5 loss 0.25", pats) == {
        "step": 3, "top1": 93.5, "val_acc": 93.5, "loss": 0.25}
    assert parse_line("loss 7", [re.compile(r"(?P<loss>\d+)")]) == {"loss": 7}
    # a group that did not match, or matched text that is no number, gives nothing
    pat = re.compile(r"ver (?P<v>[\d.]+)(?P<rc>rc\d)?")
    assert parse_line("ver 1.2.3", [pat]) == {}
    assert parse_line("ver 12", [pat]) == {"ver": 12, "v": 12}


# ---------------------------------------------------------------------------------------------
# OutputParser: a stream -> records
# ---------------------------------------------------------------------------------------------

def test_metrics_merge_across_lines_and_epoch_change_completes_the_record():
    p = OutputParser()
    assert p.feed("Epoch 1\nloss: 0.5\nval_acc: 0.8\nloss: 0.4\n") == []
    assert p.current() == {"epoch": 1, "loss": 0.4, "val_acc": 0.8}
    assert p.feed("Epoch 2 loss: 0.3\n") == [{"epoch": 1, "loss": 0.4, "val_acc": 0.8}]
    assert p.current() == {"epoch": 2, "loss": 0.3}
    assert p.feed("Epoch 2 acc 0.9\nnothing to see here\n") == []
    assert p.close() == [{"epoch": 2, "loss": 0.3, "acc": 0.9}]
    assert p.current() == {}
    assert p.names == {"epoch", "loss", "val_acc", "acc"}


def test_current_is_a_copy():
    p = OutputParser()
    p.feed("loss 1\n")
    p.current()["loss"] = 99
    assert p.current() == {"loss": 1}


def test_step_completes_records_only_when_no_epoch_was_seen():
    p = OutputParser()
    assert p.feed("step 100 loss 1.0\nstep 100 acc 0.5\nstep 200 loss 0.5\n") == [
        {"step": 100, "loss": 1.0, "acc": 0.5}]
    p = OutputParser()
    assert p.feed("iteration 10 loss 1.0\niteration 20 loss 0.5\n") == [
        {"iteration": 10, "loss": 1.0}]
    p = OutputParser()
    assert p.feed("epoch 1 step 100 loss 1.0\nstep 200 loss 0.5\n") == []
    assert p.current() == {"epoch": 1, "step": 200, "loss": 0.5}


def test_carriage_return_progress_bar():
    p = OutputParser()
    bar = "Epoch {e}: {pct:3d}%|{bar}| {n}/100 [00:01<00:01, 45.2it/s, loss={loss}]"
    chunk = ""
    for e, loss in ((0, 0.9), (1, 0.5)):
        for n in (10, 50, 100):
            chunk += "\r" + bar.format(e=e, pct=n, bar="#" * (n // 10), n=n, loss=loss - n / 1000)
    done = p.feed(chunk)
    assert done == [{"epoch": 0, "loss": 0.8}]
    assert p.current() == {"epoch": 1, "loss": 0.45}   # the last redraw has no end yet
    assert p.close() == [{"epoch": 1, "loss": 0.4}]


def test_backspaces_separate_redraws():
    p = OutputParser()
    assert p.feed("epoch 1 loss: 0.5" + "\b" * 17 + "epoch 1 loss: 0.4" + "\b" * 17
                  + "epoch 2 loss: 0.3\n") == [{"epoch": 1, "loss": 0.4}]
    assert p.current() == {"epoch": 2, "loss": 0.3}


def test_chunks_split_mid_line_give_the_same_records():
    text = (OUTPUTS / "pytorch_mnist.log").read_text() + "Train Epoch: 3 [0/60000 (0%)]\tLoss: 0.01"
    whole = OutputParser()
    expected = whole.feed(text) + whole.close()
    for size in (1, 2, 7, 64):
        p = OutputParser()
        got = []
        for i in range(0, len(text), size):
            got += p.feed(text[i:i + size])
        got += p.close()
        assert got == expected, size
    assert expected[-1] == {"epoch": 3, "loss": 0.01}


def test_partial_line_waits_for_its_end():
    p = OutputParser()
    assert p.feed("epoch 1 loss 0.") == []
    assert p.current() == {}
    p.feed("25\n")
    assert p.current() == {"epoch": 1, "loss": 0.25}


def test_close_parses_the_unterminated_last_line():
    p = OutputParser()
    p.feed("epoch 1 loss 0.5\nepoch 2 loss 0.4")
    assert p.close() == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}]
    assert p.close() == []
    assert OutputParser().close() == []


def test_crlf_and_blank_lines():
    p = OutputParser()
    assert p.feed("epoch 1 loss 0.5\r\n\r\n\r\nepoch 2 loss 0.4\r\n") == [{"epoch": 1, "loss": 0.5}]


def test_user_patterns_in_the_parser():
    p = OutputParser([r"top1 (?P<val_acc>[0-9.]+)"])
    p.feed("epoch 1 | top1 91.5 | hello\n")
    assert p.current() == {"epoch": 1, "top1": 91.5, "val_acc": 91.5}
    assert "val_acc" in p.names


@pytest.mark.parametrize("pattern", ["top1 (?P<acc>[0-9.]+", "(?P<1bad>x)", "*x"])
def test_bad_user_regex_is_a_clear_value_error(pattern):
    with pytest.raises(ValueError, match="invalid parse pattern"):
        OutputParser([pattern])


def test_user_regex_without_named_group_is_refused():
    with pytest.raises(ValueError, match="no named group"):
        OutputParser([r"top1 ([0-9.]+)"])


def test_table_header_then_rows_fastai():
    p = OutputParser()
    done = p.feed((OUTPUTS / "fastai.log").read_text())
    assert done == [{"epoch": 0, "train_loss": 0.123456, "valid_loss": 0.098765,
                     "accuracy": 0.97, "time": 12}]
    assert p.close() == [{"epoch": 1, "train_loss": 0.08, "valid_loss": 0.07,
                          "accuracy": 0.9805, "time": 11}]


def test_table_with_multiword_headers():
    p = OutputParser()
    done = p.feed("Epoch   Train Loss   Val Loss   Val Acc\n  1   0.5   0.4   0.9\n"
                  "  2   0.4   0.3   0.95\n")
    assert done + p.close() == [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "val_acc": 0.9},
                         {"epoch": 2, "train_loss": 0.4, "val_loss": 0.3, "val_acc": 0.95}]


def test_numbers_without_a_header_are_nothing():
    p = OutputParser()
    assert p.feed("1 2 3\n0.5 0.25\n") == []
    assert p.close() == []


def test_totals_stay_in_records_but_are_no_metric_series():
    p = OutputParser()
    done = p.feed("Epoch [1/15], Loss: 0.5\nEpoch [2/15], Loss: 0.4\nstep 10/100 acc 0.5\n")
    assert done + p.close() == [{"epoch": 1, "epochs": 15, "loss": 0.5},
                         {"epoch": 2, "epochs": 15, "loss": 0.4, "step": 10, "steps": 100,
                          "acc": 0.5}]
    assert p.names == {"epoch", "loss", "step", "acc"}


def test_a_traceback_gives_no_metrics():
    p = OutputParser()
    done = p.feed("Epoch 3 loss 0.5\n"
                  "Traceback (most recent call last):\n"
                  '  File "train.py", line 42, in <module>\n'
                  "    model.fit(lr=1.5, epochs=3)\n"
                  "    loss = step(batch_size = 64)\n"
                  "           ^^^^^^^^^^^^^^^^^^^\n"
                  "ValueError: learning rate 1.5 too large: diverged\n"
                  "loss 0.4\n")
    assert done + p.close() == [{"epoch": 3, "loss": 0.4}]
    assert p.names == {"epoch", "loss"}


def test_keras3_evaluate_after_fit_keeps_the_epochs_values():
    p = OutputParser()
    p.feed("Epoch 1/1\n"
           "\r 900/1875 \u2501\u2501\u2501\u2501 1s 2ms/step - accuracy: 0.8 - loss: 0.5"
           "\r1875/1875 \u2501\u2501\u2501\u2501 3s 2ms/step - accuracy: 0.915 - loss: 0.295\n"
           "313/313 \u2501\u2501\u2501\u2501 1s 2ms/step - accuracy: 0.9781 - loss: 0.0712\n")
    assert p.close() == [{"epoch": 1, "epochs": 1, "accuracy": 0.915, "loss": 0.295,
                          "test_accuracy": 0.9781, "test_loss": 0.0712}]


def test_keras_evaluate_alone_is_the_only_data():
    p = OutputParser()
    p.feed("313/313 [==============================] - 1s 2ms/step - loss: 0.0712 - accuracy: 0.9781\n")
    assert p.close() == [{"loss": 0.0712, "accuracy": 0.9781}]


def test_a_line_of_megabytes_is_read_in_bounded_time():
    p = OutputParser()
    p.feed("epoch 1 " + "x" * 3_000_000 + " | loss 0.25 | " + "y" * 200 + " 3\n")
    assert p.current() == {"loss": 0.25}       # a 200-letter word names no metric


FIXTURES = {
    "pytorch_mnist.log": [
        {"epoch": 1, "loss": 0.027851, "test_loss": 0.0474, "test_accuracy": 98.43},
        {"epoch": 2, "loss": 0.009412, "test_loss": 0.0274, "test_accuracy": 99.12},
    ],
    "keras.log": [
        {"epoch": 1, "epochs": 2, "loss": 0.295, "accuracy": 0.915, "val_loss": 0.14,
         "val_accuracy": 0.958},
        # model.evaluate()'s line after the last epoch (its bar counts 313 test batches, not
        # the epoch's 1875) keeps that epoch's training values; its own are test_ values
        {"epoch": 2, "epochs": 2, "loss": 0.1411, "accuracy": 0.9582, "val_loss": 0.1011,
         "val_accuracy": 0.9691, "test_loss": 0.1011, "test_accuracy": 0.9691},
    ],
    "lightning.log": [
        {"epoch": 0, "train_loss": 0.123, "val_loss": 0.101, "val_acc": 0.969},
        {"epoch": 1, "train_loss": 0.0561, "val_loss": 0.0843, "val_acc": 0.975, "max_epochs": 2},
    ],
    "hf_trainer.log": [
        {"loss": 0.6931, "grad_norm": 1.234, "learning_rate": 4.5e-05, "epoch": 0.4},
        {"loss": 0.5123, "grad_norm": 2.5, "learning_rate": 4e-05, "epoch": 0.8},
        {"eval_loss": 0.4012, "eval_accuracy": 0.8125, "eval_runtime": 1.6,
         "eval_samples_per_second": 625.0, "eval_steps_per_second": 39.4, "epoch": 1.0,
         "train_runtime": 101.2, "train_samples_per_second": 59.3, "train_steps_per_second": 7.41,
         "train_loss": 0.5527},
    ],
}


FIXTURES["hf_trainer_quoted.log"] = [         # recent Trainers quote their numbers
    {"loss": 0.6931, "grad_norm": 1.234, "learning_rate": 4.5e-05, "epoch": 0.4},
    {"eval_loss": 0.4127, "eval_accuracy": 0.8542, "eval_runtime": 1.6, "epoch": 1},
    {"loss": 0.5123, "grad_norm": math.nan, "learning_rate": 4e-05, "epoch": 1.4},
    # the `error: vit.width = 30 ...` line between gave nothing
    {"eval_loss": 0.4012, "eval_accuracy": 0.8625, "epoch": 2, "train_runtime": 101.2,
     "train_loss": 0.5527},
]
FIXTURES["diverged.log"] = [                  # a warning and a traceback after the NaN
    {"epoch": 1, "loss": 1.734, "test_loss": 0.4127, "test_accuracy": 85.42},
    {"epoch": 2, "loss": math.nan},
]


def nan_as_text(records: list[dict]) -> str:
    """The records as JSON with NaN written out, so that NaN compares equal to NaN."""
    return json.dumps(records)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_real_outputs(name):
    p = OutputParser()
    text = (OUTPUTS / name).read_text(encoding="utf-8")
    got = p.feed(text) + p.close()
    assert nan_as_text(got) == nan_as_text(FIXTURES[name])
    assert [{k: type(v) for k, v in r.items()} for r in got] == \
        [{k: type(v) for k, v in r.items()} for r in FIXTURES[name]]


def test_parser_reads_megabytes_of_progress_bars_in_one_feed():
    # its speed is measured by bench/output_parser.py, not asserted here
    bar = "\rEpoch 1:  50%|█████     | {n}/100000 [00:01<00:01, 45.2it/s, loss=0.312, acc=0.9]"
    text = "".join(bar.format(n=i) for i in range(10_000))        # ~0.8 MB
    text += "".join(f"Downloading shard {'x' * 40}\n" for _ in range(10_000))
    p = OutputParser()
    p.feed(text)
    assert p.current() == {"epoch": 1, "loss": 0.312, "acc": 0.9}


# ---------------------------------------------------------------------------------------------
# report(): a real training script's process writing metrics.jsonl
# ---------------------------------------------------------------------------------------------

def _run(code: str, run_dir: Path | None, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    if run_dir is not None:
        env["GRIDRUN_RUN_DIR"] = str(run_dir)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, **kw)


def test_report_appends_one_json_line(tmp_path):
    before = time.time()
    proc = _run("""
        from gridrun.engine.report import report
        report(epoch=3, train_loss=0.31, val_acc=0.97, lr=1e-3)
        report(epoch=4, ok=True, warning="not_learning", missing=None, big=2**40)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    raw = (tmp_path / "metrics.jsonl").read_text()
    assert raw.endswith("\n") and raw.count("\n") == 2
    first, second = [json.loads(line) for line in raw.splitlines()]
    t1, t2 = first.pop("time"), second.pop("time")
    assert isinstance(t1, float) and before - 1 <= t1 <= t2 <= time.time() + 1
    assert first == {"epoch": 3, "train_loss": 0.31, "val_acc": 0.97, "lr": 0.001}
    assert second == {"epoch": 4, "ok": True, "warning": "not_learning", "missing": None,
                      "big": 2**40}
    assert type(first["epoch"]) is int


def test_report_nonfinite_becomes_null_and_is_listed(tmp_path):
    proc = _run("""
        from gridrun.engine.report import report
        report(epoch=1, loss=float("nan"), grad=float("inf"), low=float("-inf"), acc=0.5)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in line and "Infinity" not in line
    rec = json.loads(line)
    del rec["time"]
    assert rec == {"epoch": 1, "loss": None, "grad": None, "low": None, "acc": 0.5,
                   "nonfinite": ["loss", "grad", "low"]}


def test_report_duck_types_numpy_and_torch_scalars(tmp_path):
    proc = _run("""
        from gridrun.engine.report import report
        class Tensor:                      # torch.Tensor / numpy scalar: .item()
            def __init__(self, v): self.v = v
            def item(self): return self.v
        class Float64(float): pass         # numpy.float64 subclasses float
        class Dec:                         # anything with __float__
            def __float__(self): return 0.25
        report(loss=Tensor(0.5), n=Tensor(7), flag=Tensor(True), x=Float64(1.5), d=Dec(),
               bad=Tensor(float("nan")))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "metrics.jsonl").read_text())
    del rec["time"]
    assert rec == {"loss": 0.5, "n": 7, "flag": True, "x": 1.5, "d": 0.25, "bad": None,
                   "nonfinite": ["bad"]}


def test_report_keeps_a_time_given_by_the_caller(tmp_path):
    proc = _run("from gridrun import report; report(step=1, time=12.5)", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "time": 12.5}


def test_report_creates_a_missing_run_dir(tmp_path):
    run_dir = tmp_path / "sweep" / "0-a"
    proc = _run("from gridrun import report; report(epoch=1)", run_dir)
    assert proc.returncode == 0, proc.stderr
    assert [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1]


def test_report_without_run_dir_prints_a_readable_line(tmp_path):
    proc = _run("""
        from gridrun.engine.report import report
        report(epoch=3, train_loss=0.31, val_acc=0.97, lr=1e-3)
        report(epoch=4, loss=float("nan"), note="not learning", flag=False, x=None)
    """, None, )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("epoch=3 train_loss=0.31 val_acc=0.97 lr=0.001\n"
                           'epoch=4 loss=nan note="not learning" flag=False x=None\n')
    assert not (ROOT / "metrics.jsonl").exists()
    # what it prints, gridrun's own parser reads back
    assert parse_line(proc.stdout.splitlines()[0]) == {
        "epoch": 3, "train_loss": 0.31, "val_acc": 0.97, "lr": 0.001}


def test_concurrent_writers_never_interleave(tmp_path):
    writers, lines = 4, 400
    code = """
        import sys, time
        from gridrun.engine.report import report
        w, start = int(sys.argv[1]), float(sys.argv[2])
        pad = "x" * 3000                   # lines far over PIPE_BUF
        while time.time() < start:         # all writers at once, not one after the other
            pass
        for i in range({lines}):
            report(writer=w, seq=i, pad=pad, loss=i / 7)
    """.format(lines=lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDRUN_")}
    env["GRIDRUN_RUN_DIR"] = str(tmp_path)
    start = str(time.time() + 0.4)
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(w), start],
                              env=env, cwd=ROOT, stderr=subprocess.PIPE) for w in range(writers)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    raw = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(raw) == writers * lines
    seen: dict[int, list[int]] = {w: [] for w in range(writers)}
    for line in raw:
        rec = json.loads(line)                       # every line whole
        assert rec["pad"] == "x" * 3000
        seen[rec["writer"]].append(rec["seq"])
    assert all(seqs == list(range(lines)) for seqs in seen.values())


def test_report_in_process_rejects_unsupported_values(monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDRUN_RUN_DIR", str(tmp_path))
    with pytest.raises(TypeError, match="'acc'"):
        report(acc={0.1, 0.2})
    with pytest.raises(TypeError, match="'deep'"):
        nested: list = []
        nested.append(nested)          # a list holding itself: refused, not a RecursionError
        report(deep=nested)
    assert not (tmp_path / "metrics.jsonl").exists()
    report(acc=0.5)
    assert [r["acc"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0.5]


def test_module_imports_nothing_heavy():
    proc = _run("""
        import sys
        import gridrun.engine.report
        heavy = {"torch", "numpy", "textual", "typer", "rich", "gridrun.engine.errors"} & set(sys.modules)
        print(sorted(heavy))
    """, None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


def test_command_line_shows_what_a_log_gives():
    proc = subprocess.run([sys.executable, "-m", "gridrun.engine.report", str(OUTPUTS / "keras.log")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["epoch"] for line in proc.stdout.splitlines()] == [1, 2]
    # epochs (a total) is in the records, for the ETA, but it is no metric series
    assert "names: accuracy epoch loss test_accuracy test_loss val_accuracy val_loss" in proc.stderr


def test_command_line_prints_strict_json():
    proc = subprocess.run([sys.executable, "-m", "gridrun.engine.report",
                           str(OUTPUTS / "diverged.log")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(c))
               for line in proc.stdout.splitlines()]
    assert records[-1] == {"epoch": 2, "loss": None}
    assert "names: epoch loss test_accuracy test_loss" in proc.stderr


# ---------------------------------------------------------------------------------------------
# read_metrics
# ---------------------------------------------------------------------------------------------

def test_read_metrics_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "loss": 0.5, "time": 1.0}\n'
                    '{"epoch": 2, "loss": null, "nonfinite": ["loss"], "time": 2.0}\n'
                    '{"epoch": 3, "lo')
    assert read_metrics(path) == [
        {"epoch": 1, "loss": 0.5, "time": 1.0},
        {"epoch": 2, "loss": None, "nonfinite": ["loss"], "time": 2.0},
    ]
    assert read_metrics(str(path)) == read_metrics(path)


def test_read_metrics_missing_file_and_junk(tmp_path):
    assert read_metrics(tmp_path / "nope.jsonl") == []
    path = tmp_path / "metrics.jsonl"
    path.write_text('\n[1, 2]\n{"a": 1}\n\n{"b": 2}')
    assert read_metrics(path) == [{"a": 1}, {"b": 2}]

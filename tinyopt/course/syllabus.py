"""The course's lessons in teaching order: what each covers, needs, costs and checks.

This list is the one source of `tutorials/README.md`'s syllabus table (`markdown_table()`; a test
keeps the two equal) and of the order of the course site. `fast`: measured by `tinyopt course build
--fast` (TINYOPT_FAST=1, two lessons at once, one thread each, on a 2-core machine, 2026-12-02, load
about 3); `full`: measured by running each lesson as a script, one at a time, without TINYOPT_FAST
(wall seconds, on the same 2 shared cores, 2026-12-02, 1-minute load average 3.4-4.6 from other
jobs). Numba kernels were already in their cache; a first run also compiles them (~10-30 s more).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


@dataclass(frozen=True)
class Lesson:
    stem: str             # file name without .py, e.g. "01_optimizers"
    title: str
    seeds: str            # which seed articles' topic it covers
    topic: str
    prerequisites: tuple  # stems of lessons to do first
    full: str             # time to run, normal settings
    fast: str             # time to run with TINYOPT_FAST=1
    checks: str           # what the lesson asserts at its end

    @property
    def number(self) -> str:
        return self.stem.split("_", 1)[0]

    @property
    def path(self) -> Path:
        return TUTORIALS / f"{self.stem}.py"


LESSONS = (
    Lesson("00_keras_seed_examples", "The seeds' Keras examples, on tinyopt", "000, 001",
           "structure of a network: neurons, layers, activations; the Keras MLP and CIFAR CNN",
           (), "117 s", "4 s", "each corrected seed example trains and its shapes are right"),
    Lesson("13_cnn", "Convolution from its formula", "001, 003",
           "CNNs: the convolution and pooling formulas, im2col, the backward pass, fc sizes",
           ("00_keras_seed_examples",), "10 s", "6 s",
           "loops = im2col = tinyopt = torch; gradients by central differences; the seeds' fc sizes"),
    Lesson("01_optimizers", "Optimizers, from their formulas, step by step", "001, 003, 004",
           "GD, SGD, Momentum, Adagrad, RMSprop, Adam and the rest of the family",
           ("00_keras_seed_examples",), "26 s", "13 s",
           "every optimizer equals its formula by hand and torch; Adam bias correction matters"),
    Lesson("02_schedules", "Learning-rate schedules", "000, 001",
           "learning-rate decay: linear, exponential, cosine, reduce-on-plateau and torch's others",
           ("01_optimizers",), "23 s", "5 s",
           "closed forms equal the schedulers; step order; a schedule beats a constant rate"),
    Lesson("03_fitting_capacity_l2", "Underfitting, overfitting and L2", "001",
           "L1/L2 regularisation, capacity, over- and underfitting",
           ("01_optimizers",), "16 s", "4 s", "the large model overfits and L2 shrinks its weights and its gap; L1 zeros small weights"),
    Lesson("04_batch_size_and_lr", "Batch size and learning rate", "001, 003",
           "minibatch SGD: gradient noise against batch size, the learning-rate range",
           ("01_optimizers",), "4 s", "4 s", "gradient noise falls as 1/√B; too large an lr diverges"),
    Lesson("12_loss_landscape", "The loss landscape optimizers move on", "001, 003",
           "loss surfaces, sharpness, the edge of stability",
           ("01_optimizers", "04_batch_size_and_lr"), "41 s", "9 s",
           "filter-normalised slices; λ_max by power iteration; sharpness settles near 2/η"),
    Lesson("11_write_your_own_optimizer", "Write your own optimizer", "003, 004",
           "implementing and checking an optimizer (the seeds' Adam errata)",
           ("01_optimizers",), "3 s", "3 s", "the checker finds each classic mistake at the right term"),
    Lesson("09_rnn", "Recurrent networks and activations", "001, 003",
           "RNN/LSTM/GRU, backpropagation through time, vanishing gradients, activations",
           ("13_cnn", "01_optimizers"), "288 s", "7 s", "cells equal torch; gradient norms vanish for tanh RNNs"),
    Lesson("06_pruning", "Pruning that makes a network smaller and faster", "000, 002, 003, 004",
           "pruning: weight, neuron and layer criteria, schedules, shrinking, sparse kernels",
           ("13_cnn", "03_fitting_capacity_l2"), "40 s", "8 s", "masks equal torch's; shrunk models are equal and faster"),
    Lesson("05_quantization", "Quantization, from the formula to an integer-only CNN", "000, 002, 003, 004",
           "quantization: integer, low-bit and mixed; PTQ and QAT",
           ("13_cnn",), "16 s", "5 s", "the integer-only Linear equals the arithmetic by hand, bit for bit; int8 is ~4× smaller and within a point of fp32; each bit halves the error"),
    Lesson("08_mixed_precision", "Mixed precision: fp16, bf16 and loss scaling", "002",
           "half precision: number formats, autocast, loss scaling",
           ("05_quantization",), "4 s", "4 s", "GradScaler equals its update rule by hand; fp16 gradients underflow without scaling; master weights keep small updates"),
    Lesson("07_distillation_transfer", "Knowledge distillation and transfer learning", "003, 004",
           "distillation (soft targets, T²) and transfer learning (freezing, fine-tuning)",
           ("01_optimizers", "13_cnn"), "73 s", "10 s", "kd_loss equals its formula; T²·KL gradients do not depend on T; with few labels the distilled student beats scratch"),
    Lesson("10_parallel", "Data- and model-parallel training on MPI", "002",
           "data parallelism, model parallelism, distributed training",
           ("01_optimizers", "04_batch_size_and_lr"), "6 s", "6 s", "2 ranks equal one process; the ring all-reduce equals MPI's"),
    Lesson("14_hardware", "Hardware: what the machine can do, measured", "002, 003",
           "hardware acceleration: peak GFLOP/s, memory bandwidth, roofline, threads, SIMD, int8",
           ("13_cnn", "05_quantization"), "5 s", "3 s", "the roofline and intensity formulas; the measured points are placed on it; int8 GEMM is exact"),
)


def available() -> tuple:
    """The lessons whose file exists in this checkout (a topic may not have landed yet)."""
    return tuple(lesson for lesson in LESSONS if lesson.path.is_file())


def find(lesson) -> Lesson:
    """A lesson by number ("1", "01"), stem ("01_optimizers") or path; a clear error otherwise."""
    text = str(lesson)
    stem = Path(text).stem if text.endswith(".py") else text
    for candidate in LESSONS:
        if stem == candidate.stem or (stem.isdigit() and int(stem) == int(candidate.number)):
            return candidate
    known = ", ".join(f"{x.number} ({x.stem})" for x in available())
    raise KeyError(f"no lesson {text!r}: choose one of {known}")


def markdown_table() -> str:
    """The syllabus table of tutorials/README.md."""
    rows = ["| # | lesson | seed topic (articles) | do first | time (full / `TINYOPT_FAST=1`) | checks at the end |",
            "|---|---|---|---|---|---|"]
    for i, x in enumerate(available(), start=1):
        before = ", ".join(p.split("_", 1)[0] for p in x.prerequisites) or "–"
        rows.append(f"| {i} | [{x.number} · {x.title}]({x.stem}.py) | {x.topic} ({x.seeds}) | {before} | "
                    f"{x.full} / {x.fast} | {x.checks} |")
    return "\n".join(rows)


def lesson_references(text: str) -> list:
    """Stems of lessons named in `text` as `NN_name.py` (to turn into links on the site)."""
    return re.findall(r"\b(\d\d_[a-z0-9_]+)\.py\b", text)

"""Benchmark of ``numscale.inspect``: a GPT-2-small-sized model on 1,024 tokens.

    python tools/bench_inspect.py [--threads 2] [--tokens 1024]

Builds ``GPT2LMHeadModel(GPT2Config())`` (124M parameters, random weights drawn under a
fixed seed; nothing downloaded), draws 1,024 token ids from a seeded generator, runs
:func:`numscale.inspect.inspect_model` (float32 recording, bfloat16 and float16 losses,
int8 errors of every matrix) on ``--threads`` CPU threads, and prints one JSON object:
seconds per stage, total seconds, peak resident memory (GB, ``ru_maxrss``) and the
targets (60 s, 3 GB on 2 cores), and the CPU time (meaningful on a busy machine,
where the wall time is not). A benchmark, not a test: it measures this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=1024)
    args = parser.parse_args(argv)
    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from numscale.inspect import inspect_model

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with torch.random.fork_rng():  # the model's init draws from global RNG
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config()).eval()
    built = time.perf_counter() - start
    ids = np.random.default_rng(0).integers(0, model.config.vocab_size, args.tokens)
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "start"]

    def progress(message: str) -> None:  # a message starts a stage: time the last one
        now = time.perf_counter()
        stages[last[1]] = round(now - last[0], 2)
        last[0], last[1] = now, message.strip()

    begin, cpu = time.perf_counter(), time.process_time()
    report = inspect_model(model, [ids], progress=progress)
    seconds = time.perf_counter() - begin
    cpu_seconds = time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        json.dumps(
            {
                "benchmark": "numscale.inspect, GPT2Config() random weights",
                "parameters": report["model"]["n_parameters"],
                "tokens": args.tokens,
                "threads": args.threads,
                "model_build_seconds": round(built, 2),
                "inspect_seconds": round(seconds, 2),
                "stages_seconds": stages,
                # CPU time of all threads: on an idle machine the wall time lies between
                # cpu_seconds / threads and cpu_seconds; on a loaded one, read this
                "inspect_cpu_seconds": round(cpu_seconds, 2),
                "peak_memory_gb": round(peak_gb, 3),
                "target_seconds": 60,
                "target_memory_gb": 3,
                "within_target": bool(seconds < 60 and peak_gb < 3),
                "load_average": os.getloadavg()[0],
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

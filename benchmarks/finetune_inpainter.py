"""Fine-tune an inpainting run with the SSIM term, into a new run folder.

The partial-convolution paper trains in two phases (Liu et al. 2018, section 4: 2e-4, then a
fine-tuning phase at a lower rate). Here the second phase adds `ssim_weight * (1 - SSIM)` of
the composite (Zhao et al. 2017), which lifts the SSIM of the fills:

    python benchmarks/finetune_inpainter.py RUN OUT --ssim-weight 3 --steps 800
        [--learning-rate 1e-4] [--dataset DIR] [--batch-size 8] [--seed 1]

OUT gets `model.keras` and a `run_config.json` (RUN's, plus a `fine_tune` entry per phase), so
`kerasgen evaluate OUT` and `benchmarks/ship_inpainter.py OUT` read it as a run. A phase runs
whole (no resume); its CPU time is printed.
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import training  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--ssim-weight", type=float, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--dataset", default=None, help="defaults to the run's")
    parser.add_argument("--batch-size", type=int, default=None, help="defaults to the run's")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.steps < 100 or args.steps % 100:
        parser.error(f"--steps must be a positive multiple of 100, got {args.steps}.")
    if args.ssim_weight < 0 or args.learning_rate <= 0:
        parser.error("--ssim-weight must be >= 0 and --learning-rate > 0.")
    out = Path(args.out)
    if (out / "model.keras").exists():
        parser.error(f"{out} already holds a model.keras; pass a new folder.")

    model = training.load_run(args.run)
    config = training.read_run_config(args.run)
    dataset = args.dataset or config["dataset"]
    batch_size = args.batch_size or config["batch_size"]
    model.ssim_weight = args.ssim_weight  # read by the train step traced below
    model.optimizer.learning_rate.assign(args.learning_rate)
    data = model.training_data(dataset, batch_size, seed=args.seed)
    start_steps, cpu = int(model.optimizer.iterations), time.process_time()
    model.fit(data, steps_per_epoch=100, epochs=args.steps // 100, verbose=2)
    cpu_minutes = (time.process_time() - cpu) / 60
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    phase = {"from": str(args.run), "steps": args.steps, "start_step": start_steps,
             "ssim_weight": args.ssim_weight, "learning_rate": args.learning_rate,
             "dataset": dataset, "batch_size": batch_size, "seed": args.seed,
             "cpu_minutes": round(cpu_minutes, 1)}
    config["fine_tune"] = [*config.get("fine_tune", []), phase]
    (out / "run_config.json").write_text(json.dumps(config, indent=2))
    print(f"fine-tuned {args.steps} steps (to step {int(model.optimizer.iterations)}) in "
          f"{cpu_minutes:.1f} CPU-minutes: {out}")


if __name__ == "__main__":
    main()

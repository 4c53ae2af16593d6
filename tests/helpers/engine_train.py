"""Train the toy problem from a config, as a real run would: ``python engine_train.py RUN_DIR [--resume]
[--sleep S]``. The kill -9 test starts it, kills it mid-run and resumes it.

Exercises every random stream a resume must restore: dropout (torch), per-sample noise (numpy),
a jitter in the step (python), and the shuffled data order.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import engine_toy

from tailteacher.engine import LoaderSource, build_trainer, init_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to wait after each step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = engine_toy.toy_config(args.run_dir)
    config = config.model_copy(update={"run": config.run.model_copy(update={"resume": args.resume})})
    dist, device = init_run(config.train)
    model = engine_toy.mlp(dropout=0.2, batchnorm=True).to(device)
    data = engine_toy.NoisyData(engine_toy.regression_data(40))
    source = LoaderSource(data, batch_size=config.data.batch_size, seed=config.train.seed, dist=dist)
    extra = [engine_toy.Sleep(args.sleep)] if args.sleep else []
    trainer = build_trainer(
        config.train,
        config.run,
        record=config,
        model=model,
        step_fn=engine_toy.two_loss_step,
        data=source,
        eval_fn=lambda: engine_toy.val_loss_fn(model),
        extra_hooks=extra,
        progress=False,
    )
    print(f"starting at step {trainer.step}", flush=True)
    trainer.train()


if __name__ == "__main__":
    main()

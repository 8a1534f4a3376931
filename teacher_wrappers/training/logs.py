"""What a run shows while it trains: TensorBoard events in the run folder (synced to Weights and Biases with
--track) and the progress bar (frames, SPS, success rate and the script's own figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogs:
    """Opened when the training starts: a refused checkpoint leaves the run's events as they were. A resumed run
    goes on from `frames` (TensorBoard hides the events written after it, `purge`)."""

    def __init__(self, args: Any, name: str, path: Path, frames: int = 0, purge: bool = False):
        if args.track:
            import wandb

            wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                       config=vars(args), name=name, monitor_gym=True, save_code=True)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(path), purge_step=frames if purge else None)
        self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(
            f"|{key}|{value}|" for key, value in vars(args).items()))
        self.bar = tqdm(total=args.num_iterations * args.batch_size, initial=frames, disable=not args.progress,
                        unit="frames", dynamic_ncols=True)

    def iteration(self, frames: int, batch: int, sps: int, success_rate: float, **postfix) -> None:
        """The end of an iteration of `batch` frames: the success rate and SPS, on TensorBoard and the bar."""
        self.writer.add_scalar("charts/success_rate", success_rate, frames)
        self.writer.add_scalar("charts/SPS", sps, frames)
        self.bar.update(batch)
        self.bar.set_postfix(SPS=sps, success=f"{success_rate:.2f}", **postfix)

    def close(self) -> None:
        self.bar.close()
        self.writer.close()

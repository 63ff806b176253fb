"""Shared pieces of the training examples: command line, device choice, the
epoch loop with a progress bar, evaluation, and exact checkpoint/resume.

Kept in one place so each example script reads as the story it tells.
"""
import argparse
import os
import sys
import time

import minigrad as mg

try:
    from tqdm import tqdm
except ImportError:  # the [examples] extra installs tqdm; degrade to plain prints
    tqdm = None


def base_parser(description, epochs, lr, batch_size):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop each epoch after this many batches (quick runs)")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after this epoch, as if interrupted (continue with --resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def pick_device(name):
    dev = mg.device(name)
    if dev.type == "cuda" and not mg.cuda.is_available():
        sys.exit("error: --device cuda was asked for, but CUDA is not available here. Install the "
                 "GPU extra (pip install minigrad[gpu]) on a machine with an NVIDIA GPU, or use "
                 "--device cpu.")
    return dev


def train_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, max_batches=None,
                progress=True, batch_scheduler=None):
    """One pass over `loader`; returns (mean loss, accuracy) over the batches seen.
    `batch_scheduler` (e.g. OneCycleLR) steps after every batch."""
    model.train()
    total = max(1, min(len(loader), max_batches or len(loader)))
    bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress,
               file=sys.stdout) if tqdm else None
    seen = correct = 0
    loss_sum = 0.0
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        n = y.shape[0]
        loss_sum += loss.item() * n
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += n
        if bar is not None:
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@mg.no_grad()
def accuracy(model, x, y, device, batch_size=512):
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size].to(device)
        yb = y[start:start + batch_size].to(device)
        correct += (model(xb).argmax(dim=1) == yb).sum().item()
    return correct / x.shape[0]


def save_checkpoint(path, epoch, model, optimizer, scheduler=None):
    """Everything needed to continue exactly: weights, optimizer and scheduler
    state, the epoch, and the random generator (shuffling and dropout)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": mg.get_rng_state()}
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    mg.save(state, path)


def load_checkpoint(path, model, optimizer, scheduler=None):
    """Restores a save_checkpoint file; returns the epoch it was saved after."""
    state = mg.load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    mg.set_rng_state(state["rng"])
    return int(state["epoch"])


def fit(model, train_loader, test_x, test_y, loss_fn, optimizer, scheduler, args, device,
        checkpoint=None, start_epoch=0, log=print, per_batch=False):
    """Trains for args.epochs epochs (from start_epoch), evaluating and
    checkpointing after each; returns the final test accuracy. The scheduler
    steps once per epoch, or after every batch with per_batch=True."""
    acc = None
    t0 = time.perf_counter()
    last = min(args.epochs, args.stop_after or args.epochs)
    for epoch in range(start_epoch + 1, last + 1):
        loss, train_acc = train_epoch(model, train_loader, loss_fn, optimizer, device, epoch,
                                      args.epochs, args.max_batches, not args.no_progress,
                                      scheduler if per_batch else None)
        if scheduler is not None and not per_batch:
            scheduler.step()
        acc = accuracy(model, test_x, test_y, device)
        log(f"epoch {epoch:3d}  train loss {loss:.4f}  train acc {train_acc:.3f}  "
            f"test acc {acc:.4f}  lr {optimizer.param_groups[0]['lr']:.4g}")
        if checkpoint:
            save_checkpoint(checkpoint, epoch, model, optimizer, scheduler)
    if acc is None:
        acc = accuracy(model, test_x, test_y, device)
    log(f"trained in {time.perf_counter() - t0:.1f} s")
    return acc

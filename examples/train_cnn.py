"""Train a small CNN (Conv-BatchNorm-ReLU-Pool blocks) on the real 8x8 digits,
or on MNIST when you have its IDX files.

    python examples/train_cnn.py                    # digits, ~98-99 % test accuracy
    python examples/train_cnn.py --mnist ~/data/mnist --epochs 2
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import minigrad as mg  # noqa: E402
from minigrad import nn, optim  # noqa: E402
from minigrad.data import DataLoader, TensorDataset, datasets  # noqa: E402

import training  # noqa: E402


def build_cnn(side):
    """Two conv blocks; `side` is the input's height/width (8 for digits, 28 for MNIST)."""
    pooled = side // 2 // 2
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * pooled * pooled, 10),
    )


def load(args):
    if args.mnist:
        train = datasets.load_mnist(args.mnist, kind="train", flatten=False)
        test = datasets.load_mnist(args.mnist, kind="t10k", flatten=False)
        return train[0], train[1], test[0], test[1]
    d = datasets.load_digits(flatten=False)
    return d.x_train, d.y_train, d.x_test, d.y_test


def main(argv=None):
    parser = training.base_parser(__doc__, epochs=15, lr=1e-2, batch_size=32)
    parser.add_argument("--mnist", default=None, help="folder with the MNIST IDX files (gz or not)")
    parser.add_argument("--checkpoint", default=None, help="save a checkpoint here after each epoch")
    args = parser.parse_args(argv)
    device = training.pick_device(args.device)

    mg.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load(args)
    mean, std = x_train.mean().item(), x_train.std().item()  # z-score with training statistics
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)

    model = build_cnn(x_train.shape[-1]).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                              steps_per_epoch=min(len(loader), args.max_batches or len(loader)))
    print(f"training {sum(p.numel() for p in model.parameters())} parameters on {device}: "
          f"{len(x_train)} train / {len(x_test)} test images of {tuple(x_train.shape[1:])}")
    acc = training.fit(model, loader, x_test, y_test, nn.CrossEntropyLoss(), optimizer, scheduler,
                       args, device, checkpoint=args.checkpoint, per_batch=True)
    print(f"test accuracy: {acc:.4f}")
    return acc, model


if __name__ == "__main__":
    main()

"""nn.Dropout: inverted dropout, identity in eval mode."""
from ..module import Module
from ...ops.dropout import check_probability, dropout


class Dropout(Module):
    """Zeroes each element with probability p during training and scales the
    rest by 1 / (1 - p); passes the input through unchanged in eval mode."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = check_probability(p)
        self.inplace = inplace

    def forward(self, input):  # noqa: A002
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

"""Small PyTorch models behind the bundled examples and the tests (plain torch, no torchvision).

- ``SKUnit``: PytorchInsight's SKConv (SK-ResNet50 guide): softmax over dim 1 of [B, M, C, 1, 1],
  which the TorchScript exporter wraps in Transpose -> Softmax -> Transpose before opset 13.
- ``SKResNeXt``: SK-ResNeXt-50 in the shape of the SK-ResNet50 guide's network: 16 bottlenecks
  (3, 4, 6, 3) whose 3x3 stage is an SK unit, ~25 M weights (~100 MB), 16 softmax sandwiches at
  opset 11: the model class of the scale benchmarks.
- ``SRNet``: a PixelShuffle super-resolution head (RDN guide): 3 -> 64*r*r channels, PixelShuffle(r);
  Reshape -> 6-D Transpose -> Reshape at opset 9, DepthToSpace(CRD) from opset 11.
- ``ManualShuffle``: PixelShuffle by hand with ``size()``: a shape subgraph for ``simplify`` to fold.
- ``GhostBlock``: GhostNet's Ghost module pair (GhostNet guide), a clean convolutional block.
- ``VoiceActivity``: a voice-activity detector shaped like Silero VAD (audio chunk, LSTM state,
  sample rate): scripted, so ``if sr == 16000 ... elif sr == 8000`` and the shape checks export as
  nested If nodes, one network per sample rate; a few hundred nodes counting every branch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional


class SKUnit(nn.Module):
    """SKConv of PytorchInsight: M dilated branches fused by a softmax attention over branches."""

    def __init__(self, features: int = 16, branches: int = 2, reduction: int = 2, min_dim: int = 8) -> None:
        super().__init__()
        hidden = max(features // reduction, min_dim)
        self.convs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(features, features, 3, padding=1 + i, dilation=1 + i, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=False),
            )
            for i in range(branches)
        )
        self.fc = nn.Sequential(nn.Conv2d(features, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(hidden, features, 1) for _ in range(branches))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([conv(x) for conv in self.convs], dim=1)  # [B, M, C, H, W]
        summary = feats.sum(dim=1).mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        z = self.fc(summary)
        attention = torch.stack([fc(z) for fc in self.fcs], dim=1)  # [B, M, C, 1, 1]
        attention = self.softmax(attention)
        return (feats * attention).sum(dim=1)


class SKBottleneck(nn.Module):
    """1x1 reduce, an SK unit (grouped branches), 1x1 expand, plus the shortcut."""

    def __init__(self, inputs: int, width: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(inputs, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU())
        self.sk = SKUnit(width, reduction=16, min_dim=32)
        for branch in self.sk.convs:  # ResNeXt's grouped 3x3 (32 groups)
            branch[0] = nn.Conv2d(width, width, 3, padding=branch[0].padding, dilation=branch[0].dilation,
                                  groups=32, bias=False)
        self.expand = nn.Sequential(nn.Conv2d(width, outputs, 1, bias=False), nn.BatchNorm2d(outputs))
        projection = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
        self.shortcut = nn.Identity() if stride == 1 and inputs == outputs else projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.relu(self.expand(self.sk(self.reduce(x))) + self.shortcut(x))


class SKResNeXt(nn.Module):
    """SK-ResNeXt-50 (32x4d widths doubled per stage as in ResNeXt-50): stem, 3-4-6-3 SK bottlenecks, head."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        layers, inputs = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.MaxPool2d(3, stride=2, padding=1)], 64
        for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (128, 256, 512, 1024), strict=True)):
            for block in range(blocks):
                stride = 2 if block == 0 and stage > 0 else 1
                layers.append(SKBottleneck(inputs, width, width * 2, stride))
                inputs = width * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class SRNet(nn.Module):
    """A super-resolution tail: conv to 64*r*r channels, PixelShuffle(r), conv back to RGB."""

    def __init__(self, scale: int = 2, channels: int = 64) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, channels * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.out = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.shuffle(self.expand(x)))


class ManualShuffle(nn.Module):
    """PixelShuffle written by hand with ``size()``, as many ported models do: exported with
    dynamic axes it becomes a Shape/Gather/Concat subgraph feeding Reshape -> Transpose -> Reshape."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        r = self.scale
        y = x.view(n, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (r * r), h * r, w * r)


class GhostModule(nn.Module):
    """GhostNet's Ghost module: a primary conv plus cheap depthwise 'ghost' features."""

    def __init__(self, inp: int, oup: int, ratio: int = 2, relu: bool = True) -> None:
        super().__init__()
        self.oup = oup
        init = -(-oup // ratio)
        act = nn.ReLU() if relu else nn.Identity()
        self.primary = nn.Sequential(nn.Conv2d(inp, init, 1, bias=False), nn.BatchNorm2d(init), act)
        self.cheap = nn.Sequential(
            nn.Conv2d(init, init * (ratio - 1), 3, padding=1, groups=init, bias=False),
            nn.BatchNorm2d(init * (ratio - 1)),
            nn.ReLU() if relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(x)
        return torch.cat([primary, self.cheap(primary)], dim=1)[:, : self.oup]


class GhostBlock(nn.Module):
    """A Ghost bottleneck with stride 1: expand, project, residual."""

    def __init__(self, channels: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.ghost1 = GhostModule(channels, hidden)
        self.ghost2 = GhostModule(hidden, channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ghost2(self.ghost1(x))


class VADBranch(nn.Module):
    """One sample rate's network: a learnt STFT (strided Conv1d), a conv encoder, an LSTM cell."""

    def __init__(self, window: int, hidden: int = 16) -> None:
        super().__init__()
        self.window = window
        self.stft = nn.Conv1d(1, window + 2, window, stride=window // 2, bias=False)
        self.encoder = nn.Sequential(
            nn.Conv1d(window // 2 + 1, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.cell = nn.LSTMCell(hidden, hidden)
        self.head = nn.Conv1d(hidden, 1, 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.size(1) < self.window:
            x = functional.pad(x, (0, self.window - x.size(1)))
        x = functional.pad(x.unsqueeze(1), (0, self.window // 4), mode="reflect")
        spectrum = self.stft(x)
        half = spectrum.shape[1] // 2
        magnitude = torch.sqrt(spectrum[:, :half] ** 2 + spectrum[:, half:] ** 2)
        h, c = self.cell(self.encoder(magnitude).mean(dim=2), (state[0], state[1]))
        probability = torch.sigmoid(self.head(functional.relu(h).unsqueeze(2))).squeeze(2)
        return probability, torch.stack([h, c])


class VoiceActivity(nn.Module):
    """Silero-VAD-like: speech probability of an audio chunk at 8 or 16 kHz (multiples of 16 kHz
    are decimated), with an LSTM state that restarts at zero when the batch size changes."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.hidden = hidden
        self.model_16k = VADBranch(64, hidden)
        self.model_8k = VADBranch(32, hidden)

    def forward(self, x: torch.Tensor, state: torch.Tensor, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if sr != 16000 and sr % 16000 == 0:
            x = x[:, :: sr // 16000]
            sr = 16000
        if state.size(2) != self.hidden or state.size(1) != x.size(0):
            state = torch.zeros(2, x.size(0), self.hidden)
        if sr == 16000:
            out, state = self.model_16k(x, state)
        elif sr == 8000:
            out, state = self.model_8k(x, state)
        else:
            out = torch.zeros(x.size(0), 1)
        return out, state


def export_voice_activity(path: Path, opset: int) -> Path:
    """Export the scripted ``VoiceActivity`` (inputs ``input`` [batch, samples], ``state``
    [2, batch, 16], ``sr`` int64; outputs ``output``, ``stateN``) with the TorchScript exporter."""
    import warnings

    torch.manual_seed(0)
    sample = (torch.randn(1, 512), torch.zeros(2, 1, 16), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated, and it is what exports the Ifs
        model = torch.jit.script(VoiceActivity().eval())
        torch.onnx.export(
            model,
            sample,
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=["input", "state", "sr"],
            output_names=["output", "stateN"],
            dynamic_axes={"input": {0: "batch", 1: "samples"}, "state": {1: "batch"}},
        )
    return path


def export(
    model: nn.Module, path: Path, input_shape: tuple[int, ...], opset: int, dynamic: dict[int, str] | None = None
) -> Path:
    """Export ``model`` with the TorchScript exporter (what the seed guides used), seeded and in eval mode.

    ``dynamic`` names the input axes to export as dynamic (e.g. ``{0: "batch"}``).
    """
    import warnings

    torch.manual_seed(0)
    model.eval()
    sample = torch.randn(*input_shape)
    axes = {"image": dynamic, "output": {0: dynamic[0]} if 0 in dynamic else {}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            sample,
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=["image"],
            output_names=["output"],
            dynamic_axes=axes,
        )
    return path


def build(name: str, opset: int, path: Path, dynamic_batch: bool = False, scale: int = 2) -> Path:
    """Build a named model (``skunit``, ``sk-resnext``, ``srnet``, ``ghost``, ``manual-shuffle``, ``vad``) at
    ``opset`` into ``path``.

    ``manual-shuffle`` always has dynamic batch, height and width; ``vad`` a dynamic batch and length.
    """
    torch.manual_seed(0)
    batch = {0: "batch"} if dynamic_batch else None
    if name == "skunit":
        return export(SKUnit(), path, (1, 16, 14, 14), opset, batch)
    if name == "srnet":
        return export(SRNet(scale), path, (1, 3, 114, 114), opset, batch)
    if name == "sk-resnext":
        return export(SKResNeXt(), path, (1, 3, 224, 224), opset, batch)
    if name == "ghost":
        return export(GhostBlock(), path, (1, 16, 28, 28), opset, batch)
    if name == "manual-shuffle":
        return export(ManualShuffle(scale), path, (1, 16 * scale * scale, 19, 19), opset, {0: "n", 2: "h", 3: "w"})
    if name == "vad":
        return export_voice_activity(path, opset)
    raise ValueError(f"unknown model {name}")

"""InstanSeg side of the star-convex speed benchmark: its network and its own post-processing on the DSB test images.

Runs inside the venv made by ``bench/setup_instanseg_env.sh``, never in convscope's own, and imports nothing of
convscope (the driver, ``bench/speed_peers.py``, runs it as a subprocess and reads its one JSON line):

    bench/.envs/instanseg/bin/python bench/instanseg_peer.py --split SPLIT.json [--limit N] [--threads 1] \
        [--repeats 3] [--seed 0] [--dim-in 1] [--out FILE.json]

``SPLIT.json`` is the file ``bench/stardist_bench.py`` writes (``{"train": [[image, mask], ...], "val": [...],
"test": [...]}``); the test images are read as ``bench/stardist_peer.py`` reads them (2-D float32 gray: the mean of
R, G, B of the DSB PNGs, which are gray stored as RGBA). ``--limit N`` keeps the first N test images.

The network. InstanSeg's pretrained models (``brightfield_nuclei``, ``fluorescence_nuclei_and_cells``,
``single_channel_nuclei``) are TorchScript files downloaded from GitHub at run time, which cannot be reached here,
and the package does not ship the settings they were trained with (``model-index.json`` holds only names and
URLs). What it ships is the code that makes such a model: ``instanseg/scripts/train.py`` (argparse defaults:
``InstanSeg_UNet``, layers ``[32, 64, 128, 256]``, batch norm, ``n_sigma`` 2, ``dim_coords`` 2, ``dim_seeds`` 1,
pixel-classifier MLP width 5, feature engineering "0", target "N" = nuclei only, ``dim_in`` 3) and
``instanseg/utils/utils.py:export_to_torchscript`` (wraps the trained network in ``InstanSeg_Torchscript``: the
traced U-Net plus its seed finding, pixel classifier and instance merging, then ``torch.jit.script``). This script
reads those defaults from the installed ``train.py`` (parsed, not imported: importing it needs the ``full`` extra),
builds the network with the package's own ``build_model_from_dict`` and ``InstanSeg.initialize_pixel_classifier``
(random initialisation, ``torch.manual_seed(--seed)``), and exports it exactly as ``export_to_torchscript`` does.
``--dim-in`` (default 1: the DSB images are one gray channel, as for ``single_channel_nuclei``) replaces
``train.py``'s 3 input channels; it only changes the first convolution's input channels.

Prediction is InstanSeg's own small-image path, ``InstanSeg(model).eval_small_image(image, pixel_size=None)``,
which ``InstanSeg.eval`` uses for every image under 3 x 1500^2 pixels: per-image percentile normalisation (0.1 /
99.9), padding to a multiple of 16, the network, then its post-processing inside the scripted model (seed map ->
local maxima, per-seed 64 x 64 windows through the pixel classifier, fragment clean-up and hole filling, sparse
IoU merging, label image). No rescaling: the DSB images carry no pixel size, so ``pixel_size=None`` (as for an
image whose size in microns is unknown).

Timing (wall clock, ``--threads`` torch threads, default 1; one warm-up call of each step on the first image; then
``--repeats`` passes over all images, each image timed in every pass; the median over the passes of the summed
seconds, divided by the megapixels):

- ``network``: normalisation (as ``eval_small_image`` does it), padding and the traced U-Net (``model.fcn``);
- ``end_to_end``: ``eval_small_image`` of the untrained network (normalisation, network, post-processing);
- ``postprocess`` = ``end_to_end - network``, per pass.

An untrained network makes the post-processing unrealistically cheap: its seed map stays near 0.5, below the seed
threshold 0.7, so no seed is found and the post-processing stops after the seed search (``n_objects_untrained``
says how many objects it found). So the post-processing is also timed on a realistic output, through the same
scripted code: ``InstanSeg_Torchscript`` built around an *oracle* network that returns, for the image at hand, the
output a perfectly trained InstanSeg would give for its ground-truth mask (made untimed, before each call): the seed
channel at InstanSeg's training target, the instance-wise distance to the background normalised to 1 per nucleus
(``(edt - 0.5) * 15``, background -7.5); the two embedding channels such that every pixel of a nucleus points at
the pixel where its distance is largest (InstanSeg's ``(sigmoid(x) - 0.5) * 8`` offset, at most 4 embedding units
= 16 pixels, clipped beyond); sigma channels 0; and a pixel classifier of the package's own ``ProbabilityNet`` shape
(4 -> 5 -> 5 -> 1) with weights set by hand to ``4 - 16 * (|dx| + |dy|)`` (the L1 distance of a pixel's embedding
from the seed's; above the mask threshold 0.53 within one pixel). Then ``postprocess_realistic`` =
``eval_small_image`` with the oracle - normalisation, per pass (the oracle's "network" is a slice of a stored
tensor). ``n_objects_realistic`` and ``matched_realistic`` (objects matching a ground-truth nucleus at IoU > 0.5)
show that this output is decoded into the nuclei of the ground truth (``n_objects_truth``); the nuclei it misses
(on the first five test images: 17 of 262) are larger than the 64 x 64 window (its default ``window_size`` 32; a
trained model meets the same limit at this scale, without rescaling) or small nuclei whose seed loses to a
neighbour's within 5 pixels (its default ``peak_distance``; its peak search keeps the first of equal maxima, and the
oracle's maxima are all exactly 1, a trained model's are not). The sum
``network + postprocess_realistic`` (``total_realistic``, the median of the passes' sums) is InstanSeg's time per
megapixel as a trained model would spend it, up to how a trained seed map differs from the oracle's.

Training: ``instanseg/scripts/train.py`` ships in the package (``training_code`` in the JSON says whether the
modules it imports are installed here); it needs the ``full`` extra (``instanseg/utils/augmentations.py`` imports
torchvision and monai at module level), and torchvision is not installed here, so accuracy is not compared.

Prints exactly one JSON line on stdout (what the package prints goes to stderr); ``--out FILE`` also keeps it with
the per-image numbers.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from stardist_peer import read_any, read_split, to_gray, to_labels

STEPS = ("normalise", "network", "end_to_end", "end_to_end_realistic")
HAND_SET_CLASSIFIER = (4.0, 16.0)  # logit = a - b * (|dx| + |dy|), embedding units (1 pixel = 0.25)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--split", type=Path, required=True, help="JSON with train/val/test lists of [image, mask]")
    p.add_argument("--limit", type=int, help="only the first N test images")
    p.add_argument("--threads", type=int, default=1, help="torch intra/inter-op threads and OMP_NUM_THREADS")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the images (the median is reported)")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the random initialisation")
    p.add_argument("--dim-in", type=int, default=1, help="input channels of the network (train.py's default: 3)")
    p.add_argument("--out", type=Path, help="also write the result with per-image numbers to this JSON file")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    return args


def log(msg: str) -> None:
    print(f"[instanseg-peer] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the model


def train_defaults() -> dict:
    """The argparse defaults of the installed ``instanseg/scripts/train.py`` (parsed with ``ast``; importing it
    needs the ``full`` extra), keyed by option name without dashes, e.g. ``{"layers": "[32, 64, 128, 256]"}``."""
    path = Path(find_spec("instanseg").origin).parent / "scripts" / "train.py"
    defaults = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            if names and isinstance(default, ast.Constant):
                defaults[names[0][2:]] = default.value
    return defaults


def architecture(dim_in: int) -> dict:
    """The build dictionary ``instanseg_training`` makes from ``train.py``'s defaults (``dim_in`` replaced)."""
    d = train_defaults()
    target = d["target_segmentation"]
    return {"model_str": d["model_str"], "layers": tuple(ast.literal_eval(d["layers"])), "norm": d["norm"],
            "dropprob": float(d["dropprob"]), "n_sigma": d["n_sigma"], "dim_coords": d["dim_coords"],
            "dim_seeds": d["dim_seeds"], "mlp_width": d["mlp_width"], "feature_engineering": d["feature_engineering"],
            "multihead": d["multihead"], "target_segmentation": target, "cells_and_nuclei": len(target) == 2,
            "dim_in": dim_in, "train_py_dim_in": d["dim_in"]}


def build_network(arch: dict, seed: int):
    """InstanSeg_UNet + its pixel classifier, randomly initialised, as ``instanseg_training`` builds them."""
    from instanseg.utils.loss.instanseg_loss import InstanSeg as InstanSegMethod
    from instanseg.utils.model_loader import build_model_from_dict

    with contextlib.redirect_stdout(sys.stderr):  # the package prints "Generating InstanSeg_UNet"
        model = build_model_from_dict(dict(arch), random_seed=seed)
    method = InstanSegMethod(n_sigma=arch["n_sigma"], device="cpu", cells_and_nuclei=arch["cells_and_nuclei"],
                             dim_coords=arch["dim_coords"], dim_seeds=arch["dim_seeds"],
                             feature_engineering_function=arch["feature_engineering"])
    return method.initialize_pixel_classifier(model, MLP_width=arch["mlp_width"]).eval()


def export(model, arch: dict):
    """``model`` wrapped and scripted as ``instanseg.utils.utils.export_to_torchscript`` does it."""
    import torch
    from instanseg.utils.loss.instanseg_loss import InstanSeg_Torchscript

    wrapped = InstanSeg_Torchscript(model, cells_and_nuclei=arch["cells_and_nuclei"], pixel_size=0,
                                    n_sigma=arch["n_sigma"], feature_engineering_function=arch["feature_engineering"],
                                    backbone_dim_in=arch["dim_in"])
    with torch.jit.optimized_execution(should_optimize=True):
        return torch.jit.script(wrapped)


def parameter_counts(model) -> dict[str, int]:
    classifier = sum(p.numel() for p in model.pixel_classifier.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"backbone": total - classifier, "pixel_classifier": classifier, "total": total}


# ----------------------------------------------------------------------------------------- the oracle


def oracle_model(arch: dict):
    """A stand-in for the network whose output is set per image (``model.fcn.out``), with a hand-set pixel
    classifier of the package's ``ProbabilityNet`` shape: logit = a - b * (|dx| + |dy|)."""
    import torch
    from instanseg.utils.loss.instanseg_loss import ProbabilityNet

    channels = arch["dim_coords"] + arch["n_sigma"] + arch["dim_seeds"]

    class Oracle(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("out", torch.zeros(1, channels, 256, 256))
            self.pixel_classifier = ProbabilityNet(arch["dim_coords"] + arch["n_sigma"], width=arch["mlp_width"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out[:, :, : x.shape[-2], : x.shape[-1]]

    oracle = Oracle()
    a, b = HAND_SET_CLASSIFIER
    net = oracle.pixel_classifier
    with torch.no_grad():
        for layer in (net.fc1, net.fc2, net.fc3):
            layer.weight.zero_()
            layer.bias.zero_()
        for i in range(2):  # |dx| + |dy| = relu(dx) + relu(-dx) + relu(dy) + relu(-dy)
            net.fc1.weight[2 * i, i], net.fc1.weight[2 * i + 1, i] = 1.0, -1.0
        net.fc2.weight[0, :4] = 1.0
        net.fc3.weight[0, 0], net.fc3.bias[0] = -b, a
    return oracle.eval()


def instance_edt(labels):
    """(H, W) float32: each pixel's distance to the nearest pixel outside its nucleus, divided by that nucleus'
    largest distance (InstanSeg's ``instance_wise_edt``: 1 at each nucleus' centre, 0 in the background)."""
    import numpy as np
    from scipy import ndimage

    out = np.zeros(labels.shape, np.float32)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        inside = labels[grown] == k
        d = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        out[grown][inside] = d[inside] / d[inside].max()
    return out


def oracle_output(labels, arch: dict, padded: tuple[int, int]):
    """(1, C, Hp, Wp) float32: what a perfectly trained InstanSeg would output for the instance ``labels`` (H, W),
    with background where InstanSeg pads its input (bottom and right, up to ``padded``)."""
    import numpy as np
    import torch
    from instanseg.utils.loss.instanseg_loss import generate_coordinate_map

    h, w = labels.shape
    edt = instance_edt(labels)
    xxyy = generate_coordinate_map("linear", 2, h, w, device=torch.device("cpu")).numpy()  # (2, H, W)
    offset = np.zeros((2, h, w), np.float32)
    flat = labels.ravel()
    order = np.lexsort((-edt.ravel(), flat))  # per label, the pixel of largest distance first
    first = order[np.r_[0, np.flatnonzero(np.diff(flat[order])) + 1]]
    centre = np.zeros((2, flat.max() + 1), np.float32)
    centre[:, flat[first]] = xxyy.reshape(2, -1)[:, first]
    inside = labels > 0
    offset[:, inside] = centre[:, labels[inside]] - xxyy[:, inside]
    offset = np.clip(offset, -3.99, 3.99) / 8 + 0.5  # (sigmoid(x) - 0.5) * 8 = offset
    out = np.zeros((1, arch["dim_coords"] + arch["n_sigma"] + 1, *padded), np.float32)
    out[0, -1] = -7.5  # seed map (x / 15 + 0.5) = 0 in the background and the padding
    out[0, :2, :h, :w] = np.log(offset / (1 - offset))
    out[0, -1, :h, :w] = (edt - 0.5) * 15
    return torch.from_numpy(out)


def matched(truth, found) -> int:
    """Ground-truth objects with a found object of IoU > 0.5 (each such pair is unique)."""
    import numpy as np

    pairs, counts = np.unique(np.stack([truth.ravel(), found.ravel()]), axis=1, return_counts=True)
    size_t = np.bincount(truth.ravel())
    size_f = np.bincount(found.ravel())
    keep = (pairs[0] > 0) & (pairs[1] > 0)
    t, f, inter = pairs[0][keep], pairs[1][keep], counts[keep]
    return int((inter / (size_t[t] + size_f[f] - inter) > 0.5).sum())


# ---------------------------------------------------------------------------------------------- timing


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def normalise(image):
    """(1, 1, H, W) float32 tensor: ``eval_small_image``'s normalisation of a 2-D image."""
    import torch
    from instanseg.inference_class import _to_ndim
    from instanseg.utils.pytorch_utils import _to_tensor_float32
    from instanseg.utils.utils import percentile_normalize

    x = _to_ndim(_to_tensor_float32(image), 4)
    return torch.stack([percentile_normalize(i) for i in x])


def network(scripted, image):
    """Normalisation, padding and the traced U-Net, as ``InstanSeg_Torchscript.forward`` runs them."""
    import torch
    from instanseg.utils.tiling import _instanseg_padding

    with torch.no_grad():
        x, _ = _instanseg_padding(normalise(image).clamp(-2, 3), extra_pad=0)
        return scripted.fcn(x)


def measure_image(inst, oracle_inst, image, truth, arch: dict) -> dict:
    """Seconds of each step for one image, and the objects found."""
    import numpy as np
    from instanseg.utils.tiling import _instanseg_padding

    def labels(out):
        return np.asarray(out[0, 0].numpy(), np.int64)

    t_norm, x = timed(lambda: normalise(image))
    t_net, _ = timed(lambda: network(inst.instanseg, image))
    t_e2e, found = timed(lambda: inst.eval_small_image(image, pixel_size=None, return_image_tensor=False))
    padded = tuple(_instanseg_padding(x, extra_pad=0)[0].shape[-2:])
    oracle_inst.instanseg.fcn.out = oracle_output(truth, arch, padded)
    t_real, found_real = timed(lambda: oracle_inst.eval_small_image(image, pixel_size=None,
                                                                      return_image_tensor=False))
    found, found_real = labels(found), labels(found_real)
    return {"normalise": t_norm, "network": t_net, "end_to_end": t_e2e, "end_to_end_realistic": t_real,
            "n_objects_untrained": int(len(np.unique(found)) - 1),
            "n_objects_realistic": int(len(np.unique(found_real)) - 1),
            "n_objects_truth": int(len(np.unique(truth)) - 1), "matched_realistic": matched(truth, found_real)}


def summarise(passes: list[list[dict]], megapixels: float) -> dict:
    """Median over the passes of each step's summed seconds, per megapixel; post-processing by difference; the
    realistic total is the median of the passes' network + realistic post-processing (the medians need not add)."""
    def per_pass(key: str) -> list[float]:
        return [sum(r[key] for r in rows) for rows in passes]

    totals = {key: per_pass(key) for key in STEPS}
    post = [e - n for e, n in zip(totals["end_to_end"], totals["network"], strict=True)]
    post_real = [e - n for e, n in zip(totals["end_to_end_realistic"], totals["normalise"], strict=True)]
    med = {key: statistics.median(v) / megapixels for key, v in totals.items()}
    med["postprocess"] = statistics.median(post) / megapixels
    med["postprocess_realistic"] = statistics.median(post_real) / megapixels
    real = [n + p for n, p in zip(totals["network"], post_real, strict=True)]
    med["total_realistic"] = statistics.median(real) / megapixels
    return {"s_per_mpx": med, "pass_seconds": {**totals, "postprocess": post, "postprocess_realistic": post_real,
                                               "total_realistic": real}}


def training_code() -> dict:
    """Whether InstanSeg's training script ships and whether what it imports is installed here."""
    ships = find_spec("instanseg.scripts.train") is not None
    needs = {name: find_spec(name) is not None for name in ("torchvision", "monai", "pandas")}
    return {"ships": ships, "path": "instanseg/scripts/train.py", "imports_installed": needs,
            "runs_here": ships and all(needs.values())}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    warnings.filterwarnings("ignore")  # autocast("cuda") on a CPU-only machine, on every call
    import numpy as np
    import torch
    from instanseg import InstanSeg

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    test = read_split(args.split)["test"][: args.limit]
    images = [to_gray(read_any(p), p) for p, _ in test]
    truths = [to_labels(read_any(m), m) for _, m in test]
    megapixels = sum(x.size for x in images) / 1e6
    arch = architecture(args.dim_in)
    model = build_network(arch, args.seed)
    log(f"{arch['model_str']} layers {list(arch['layers'])}, {parameter_counts(model)['total']:,} parameters; "
        f"{len(images)} test images, {megapixels:.2f} MP")
    inst = InstanSeg(export(model, arch), device="cpu", verbosity=0)
    oracle_inst = InstanSeg(export(oracle_model(arch), arch), device="cpu", verbosity=0)
    measure_image(inst, oracle_inst, images[0], truths[0], arch)  # warm-up: TorchScript's profiling runs
    passes = []
    for i in range(args.repeats):
        passes.append([measure_image(inst, oracle_inst, x, y, arch) for x, y in zip(images, truths, strict=True)])
        log(f"pass {i + 1}/{args.repeats}: end to end {sum(r['end_to_end'] for r in passes[-1]):.2f} s")
    last = passes[-1]
    result = {
        "framework": "instanseg", "instanseg_torch": version("instanseg-torch"), "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(), "threads": args.threads, "seed": args.seed,
        "repeats": args.repeats, "architecture": {**arch, "layers": list(arch["layers"])},
        "parameters": parameter_counts(model), "weights": "random (untrained), torch.manual_seed(seed)",
        "hand_set_classifier": {"a": HAND_SET_CLASSIFIER[0], "b": HAND_SET_CLASSIFIER[1]},
        "n_images": len(images), "megapixels": megapixels,
        **summarise(passes, megapixels),
        **{key: sum(r[key] for r in last) for key in ("n_objects_untrained", "n_objects_realistic",
                                                      "n_objects_truth", "matched_realistic")},
        "training_code": training_code(),
    }
    if args.out:
        per_image = [{"image": Path(p).name, **r} for (p, _), r in zip(test, last, strict=True)]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "per_image_last_pass": per_image}, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

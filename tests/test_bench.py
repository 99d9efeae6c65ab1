"""Model cost the papers' way: SAFMN's and its ablations' figures, the counting conventions, the
`lightsr bench` command. Counting only (on the meta device); no timing assertions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.evaluation.bench import (
    bench,
    count_complexity,
    input_size_for_output,
    measure_runtime,
    parse_size,
    to_markdown,
)
from lightsr.models.archs.safmn import SAFMN
from lightsr.models.registry import MODELS, build_model, get_spec

from conftest import need_shared


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These workloads are tiny: a second intra-op thread only adds contention (a 16x24
    forward-backward takes seconds instead of 0.1 s on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    ("name", "input_size", "params", "flops_g", "acts_m"),
    [
        # Table 1 of the paper, output 1280x720 (x3: input 427x240, output 1281x720)
        ("safmn-x2", (640, 360), 227_820, "51.53", "298.51"),
        ("safmn-x3", (427, 240), 232_695, "23.42", "134.30"),
        ("safmn-x4", (320, 180), 239_520, "13.55", "76.70"),
    ],
)
def test_safmn_matches_table1(
    name: str, input_size: tuple[int, int], params: int, flops_g: str, acts_m: str
) -> None:
    c = bench(name, timing=False).complexity
    assert c.input_size == input_size
    assert c.params == params
    assert f"{c.flops / 1e9:.2f}" == flops_g
    assert f"{c.acts / 1e6:.2f}" == acts_m
    assert c.convs == 58  # to_feat + 8 x (4 mfr + aggr + 2 ccm) + to_img


def test_safmn_x4_exact_counts() -> None:
    """Hand-derived: conv MACs per LR pixel 235,112.578 (pooled levels floor 180/8 to 22), and
    fvcore's 1 FLOP per element of the 8 x 3 nearest upsamplings of 9 channels."""
    c = bench("safmn-x4", timing=False).complexity
    assert c.macs == 13_542_474_240
    assert c.other_flops == 8 * 3 * 9 * 320 * 180
    assert c.flops2 == 2 * c.macs + c.other_flops
    assert c.acts == 76_700_160
    assert c.output_size == (1280, 720)


#: The Table 3/4 variants. Their exact parameter counts are checked against the paper's K
#: values (MODELS[...].paper). blocks12: the paper prints 350.97K, but 12 blocks of 27,864
#: parameters give 350,976 (the 4-, 6- and 8-block rows fix the per-block count); the paper
#: truncated or mistyped it.
VARIANTS = sorted(n for n, s in MODELS.items() if s.paper.get("source") in ("Table 3", "Table 4"))
PER_BLOCK = 27_864


def test_every_ablation_is_a_named_model() -> None:
    ablations = {n for n, s in MODELS.items() if s.paper.get("source") in ("Table 3", "Table 4")}
    assert len(ablations) == 22 and set(VARIANTS) == ablations


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_paper(name: str) -> None:
    spec = get_spec(name)
    c = bench(name, timing=False).complexity
    if name == "safmn-x4-blocks12":
        blocks8 = get_spec("safmn-x4").config
        assert blocks8["n_blocks"] == 8
        assert c.params == bench("safmn-x4", timing=False).complexity.params + 4 * PER_BLOCK
        assert c.params == 350_976
    else:
        assert f"{c.params / 1e3:.2f}" == spec.paper["params_k"]
    assert c.flops / 1e9 == pytest.approx(float(spec.paper["flops_g"]), rel=0.01)
    assert c.acts / 1e6 == pytest.approx(float(spec.paper["acts_m"]), rel=0.01)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).train()
    x = torch.rand(2, 3, 16, 24, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, 64, 96)
    assert torch.isfinite(y).all()
    y.mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_defaults_keep_the_official_structure() -> None:
    explicit = SAFMN(
        safm=True,
        ccm="ccm",
        norm="ln",
        modulation=True,
        multi_scale=True,
        aggregation=True,
        pool="max",
        safm_act="gelu",
    )
    default = SAFMN()
    assert list(explicit.state_dict()) == list(default.state_dict())
    assert "feats.3.ccm.ccm.2.weight" in default.state_dict()
    torch.manual_seed(0)
    default.load_state_dict(explicit.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(default(x), explicit(x), rtol=0, atol=0)


def test_official_checkpoint_still_loads_and_is_counted() -> None:
    path = need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth")
    r = bench(str(path), timing=False)
    assert (r.arch, r.scale, r.complexity.params) == ("safmn", 2, 227_820)
    assert f"{r.complexity.flops / 1e9:.2f}" == "51.53"


def test_bad_ablation_options_name_the_argument() -> None:
    with pytest.raises(ValueError, match="norm='layer'"):
        SAFMN(norm="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool"):
        SAFMN(pool="min")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty blocks"):
        SAFMN(safm=False, ccm="none")


def test_counting_conventions_on_a_toy_model() -> None:
    """Conv and linear MACs, fvcore's element-wise counts, conv activations and conv count."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8*3*9 MACs per pixel, 8 activations per pixel
        nn.BatchNorm2d(8),  # eval: 2 FLOPs per element (fvcore)
        nn.Upsample(scale_factor=2, mode="nearest"),  # 1 per output element
        nn.Conv2d(8, 4, 1, groups=2),  # 4*4 MACs per output pixel
        nn.AdaptiveAvgPool2d(1),  # 1 per input element
        nn.Flatten(),
        nn.Linear(4, 5),  # 20 MACs
    )
    c = count_complexity(model, (10, 6))
    n, n2 = 60, 240
    assert c.macs == 8 * 3 * 9 * n + 4 * 4 * n2 + 20
    assert c.other_flops == 2 * 8 * n + 8 * n2 + 4 * n2
    assert c.acts == 8 * n + 4 * n2
    assert c.convs == 2
    assert c.params == sum(p.numel() for p in model.parameters())
    assert model[0].weight.device.type == "cpu"  # the model itself is left alone


def test_sizes() -> None:
    assert input_size_for_output((1280, 720), 3) == (427, 240)
    assert input_size_for_output((1280, 720), 2) == (640, 360)
    assert parse_size("1280x720", "--output-size") == (1280, 720)
    with pytest.raises(LightSRError, match="--input-size"):
        parse_size("1280", "--input-size")


def test_runtime_smoke() -> None:
    """The timing and memory code paths run (values are not asserted: no timed tests)."""
    rt = measure_runtime(nn.Conv2d(3, 3, 3, padding=1), (16, 16), device="cpu", runs=2, warmup=0)
    assert len(rt.times_ms) == 2 and rt.min_ms <= rt.median_ms <= rt.max_ms
    assert rt.peak_mem_mb is None or rt.peak_mem_mb > 0
    assert rt.path == "plain"  # no fast path for a bare convolution
    with pytest.raises(LightSRError, match="--runs"):
        measure_runtime(nn.Identity(), (8, 8), device="cpu", runs=0)


def test_cli_json_records(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "safmn-x4", "safmn", "--scale", "4", "--json", "--no-latency"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in records] == ["safmn-x4", "safmn-x4"]
    rec = records[0]
    for key in ("model", "scale", "params", "flops_g", "acts_m", "convs", "latency_ms"):
        assert key in rec
    assert rec["peak_mem_mb"] is None and rec["latency_ms"] is None
    assert (rec["scale"], rec["params"], rec["convs"]) == (4, 239_520, 58)
    assert f"{rec['flops_g']:.2f}" == "13.55" and f"{rec['acts_m']:.2f}" == "76.70"
    assert "1 multiply-add = 1 FLOP" in rec["flops_convention"]


def test_cli_timed_on_a_small_input(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "safmn-x4-blocks4", "--input-size", "32x24", "--device", "cpu"]
    assert main([*argv, "--runs", "2", "--warmup", "1", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["input_size"] == [32, 24] and rec["output_size"] == [128, 96]
    assert rec["runs"] == 2 and rec["latency_ms"] > 0
    assert rec["device"] == "cpu" and rec["precision"] == "fp32"
    assert rec["path"].startswith("fast (")  # what `lightsr upscale` runs by default


def _fast_label() -> str:
    from lightsr.native.ops import unavailable_reason

    return "fast (native kernels)" if unavailable_reason() is None else "fast (PyTorch)"


def test_the_timed_path_is_upscale_s_unless_no_fast(capsys: pytest.CaptureFixture[str]) -> None:
    opts = ["--input-size", "16x16", "--device", "cpu", "--runs", "1", "--warmup", "0"]
    assert main(["bench", "safmn-x4-blocks4", "safmn-x4-no-ccm", *opts, "--json"]) == 0
    fast, ablation = json.loads(capsys.readouterr().out)
    assert fast["path"] == _fast_label()
    assert ablation["path"] == "plain"  # no fast path for this variant
    assert main(["bench", "safmn-x4-blocks4", *opts, "--markdown", "--no-fast"]) == 0
    md = capsys.readouterr().out
    assert "| convs | path | latency ms (min-max) |" in md.splitlines()[0]
    assert "| 0.03 | 0.06 | 0.18 | 30 | plain |" in md  # counts: the plain model's either way
    assert (fast["convs"], round(fast["flops_g"], 2), round(fast["acts_m"], 2)) == (30, 0.03, 0.18)
    assert "'plain' the eager model (--no-fast" in md


def test_cli_table_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "safmn-x4-no-ccm", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "safmn-x4-no-ccm" in out and "1 multiply-add = 1 FLOP" in out
    assert "path" not in out.splitlines()[1]  # not timed: no path column
    md = to_markdown([bench("safmn-x4-no-ccm", timing=False)])
    assert md.splitlines()[0].startswith("| model | scale | input | params | FLOPs G")
    assert "| safmn-x4-no-ccm | x4 | 320x180 | 30,720 | 1.61 |" in md


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bench", "safmn-x4", "--output-size", "1280"], "--output-size"),
        (["bench", "safmn-x4", "--input-size", "0x10"], "--input-size"),
        (["bench", "safmn-x4", "--runs", "0"], "--runs"),
        (["bench", "safmn-x4", "--warmup", "-1"], "--warmup"),
        (["bench", "safmn-x4", "--runs", "many"], "--runs"),
        (["bench", "safmn-x4", "--precision", "fp8"], "--precision"),
        (["bench", "safmn-x4", "--device", "cpu", "--precision", "fp16"], "--precision fp16"),
        (["bench", "safmn-x4", "--json", "--markdown"], "--markdown"),
        (["bench", "safmn-x4", "--output-size", "8x8", "--input-size", "8x8"], "--input-size"),
        (["bench", "nope"], "unknown model"),
        (["bench", "safmn", "--no-latency"], "needs a scale"),
        (["bench", "safmn-x4", "--scale", "2", "--no-latency"], "x4"),
        (["bench", "/nonexistent/w.pth"], "w.pth: checkpoint file not found"),
        (["bench"], "MODEL_OR_CHECKPOINT"),
    ],
)
def test_bad_flags_are_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
